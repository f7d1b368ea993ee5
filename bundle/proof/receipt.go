package proof

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/edgeseal/edgeseal/bundle/archivesig"
	"github.com/edgeseal/edgeseal/bundle/merkle"
	"github.com/edgeseal/edgeseal/bundle/wire"
)

// Checks of the archive's receipt: signed by the archive key, for this
// bundle's checkpoint, its entry in the archive's signed log checkpoint.

func (c *checker) receiptSignature() error {
	if c.akey == nil {
		return errors.New("archiveKey is not an Ed25519 PKIX key")
	}
	if c.opts.ArchiveKey != nil {
		pinned, err := pkixKey(c.opts.ArchiveKey)
		if err != nil {
			return fmt.Errorf("pinned archive key: %w", err)
		}
		pk, _ := parseArchiveKey(pinned)
		if !pk.Equal(c.akey) {
			// The archive may have rotated its key since the pinned one:
			// the receipt's key chain must lead from it to the carried key.
			if c.rc == nil {
				return errors.New("the receipt did not parse")
			}
			cp, err := c.rc.ArchiveRoot()
			if err != nil {
				return err
			}
			keys := archivesig.NewArchiveKeys(cp.Origin, pk)
			// The receipt's chain may start before the pinned key: learn
			// what follows it (earlier announcements are refused).
			for _, raw := range c.rc.KeyChain {
				_, _ = keys.Learn(raw)
			}
			_, _, ferr := keys.VerifyReceipt(c.p.Receipt, time.Now())
			if ferr == nil {
				if cur, err := keys.Key(archivesig.ArchiveKeyID(c.akey), c.rc.LogIndex, time.Now()); err != nil || !cur.Equal(c.akey) {
					return fmt.Errorf("the carried archive key %s is not one the pinned key's chain leads to", archivesig.ArchiveKeyID(c.akey))
				}
				c.notes[CheckReceiptSignature] = fmt.Sprintf("signed by %s, which the receipt's key chain leads to from the pinned key %s", archivesig.ArchiveKeyID(c.akey), archivesig.ArchiveKeyID(pk))
			} else if len(c.p.ArchiveKeyChain) == 0 {
				return fmt.Errorf("receipt key %s is not the pinned archive key %s nor one its chain leads to: %w", archivesig.ArchiveKeyID(c.akey), archivesig.ArchiveKeyID(pk), ferr)
			} else if err := vouchedBy(cp.Origin, c.akey, pk, c.p.ArchiveKeyChain, c.rc.LogIndex); err != nil {
				return fmt.Errorf("receipt key %s is not the pinned archive key %s, nor one its chain leads to (%v), nor an earlier key of it: %w",
					archivesig.ArchiveKeyID(c.akey), archivesig.ArchiveKeyID(pk), ferr, err)
			} else {
				c.notes[CheckReceiptSignature] = fmt.Sprintf("signed by %s, an earlier key of the pinned key %s: the proof's key chain (%d announcements) leads from it to the pinned key, each signed by both keys",
					archivesig.ArchiveKeyID(c.akey), archivesig.ArchiveKeyID(pk), len(c.p.ArchiveKeyChain))
			}
		}
	} else {
		c.notes[CheckReceiptSignature] = "archive key " + archivesig.ArchiveKeyID(c.akey) + " carried by the proof, not pinned (give --archive-key to pin it)"
	}
	_, err := archivesig.VerifyReceipt(c.p.Receipt, archivesig.ArchiveKeyID(c.akey), c.akey)
	return err
}

// vouchedBy checks that chain leads from the earlier archive key old to
// the pinned key: learned in order from old, each announcement signed by
// the key it retires and by the key it announces, one of them announcing
// pinned; and that old could sign a receipt for log index logIndex (an
// entry logged before old was retired: its receipts stay valid for
// ever). The pinned key's signature on the announcement naming its
// predecessor, and each key's on the one naming the key before it, is
// what vouches for old.
func vouchedBy(origin string, old, pinned ed25519.PublicKey, chain [][]byte, logIndex uint64) error {
	keys := archivesig.NewArchiveKeys(origin, old)
	if _, err := keys.LearnChain(chain); err != nil {
		return err
	}
	reached := false
	for _, raw := range chain {
		if _, an, err := archivesig.ParseArchiveKey(raw); err == nil && pinned.Equal(ed25519.PublicKey(an.NewKey)) {
			reached = true
		}
	}
	if !reached {
		return errors.New("the proof's key chain does not lead to the pinned key")
	}
	_, err := keys.Key(archivesig.ArchiveKeyID(old), logIndex, time.Now())
	return err
}

// receiptBundle: the receipt names this device and the sealed checkpoint.
// Its bundle digest is not recomputed (that needs the whole bundle, other
// exports included); in bundle format 2 one checkpoint has one bundle.
func (c *checker) receiptBundle() error {
	if c.rc == nil {
		return skip("the receipt did not parse")
	}
	if err := c.needSeal(); err != nil {
		return err
	}
	if c.rc.Device != c.p.Device || c.rc.CheckpointSize != c.cp.Size || c.rc.CheckpointRoot != wire.FormatHash(c.cp.Root) {
		return fmt.Errorf("the receipt is for checkpoint %d %s of %s, the seal's is %d %s of %s",
			c.rc.CheckpointSize, c.rc.CheckpointRoot, c.rc.Device, c.cp.Size, wire.FormatHash(c.cp.Root), c.p.Device)
	}
	c.notes[CheckReceiptBundle] = "bundle " + c.rc.BundleDigest
	return nil
}

func (c *checker) receiptInclusion() error {
	if c.rc == nil {
		return skip("the receipt did not parse")
	}
	entry, err := c.rc.Entry().Marshal()
	if err != nil {
		return err
	}
	cp, err := c.rc.ArchiveRoot()
	if err != nil {
		return err
	}
	if err := merkle.VerifyInclusion(merkle.ProofHashes(c.rc.InclusionProof), c.rc.LogIndex, cp.Size, cp.Root, merkle.LeafHash(entry)); err != nil {
		return fmt.Errorf("entry %d is not in the archive checkpoint of %d: %w", c.rc.LogIndex, cp.Size, err)
	}
	c.notes[CheckReceiptInclusion] = fmt.Sprintf("archive log entry %d of %d", c.rc.LogIndex, cp.Size)
	return nil
}

// receiptCheckpoint: the archive checkpoint's signed note verifies under
// the archive key (C2SP note key of the key, named by the log's origin).
func (c *checker) receiptCheckpoint() error {
	if c.rc == nil {
		return skip("the receipt did not parse")
	}
	if c.akey == nil {
		return skip("no archive key")
	}
	cp, err := c.rc.ArchiveRoot()
	if err != nil {
		return err
	}
	return VerifyNote([]byte(c.rc.ArchiveCheckpoint), cp.Origin, c.akey)
}

// VerifyNote checks a C2SP signed note (an archive checkpoint) under the
// archive's Ed25519 key, whose note key name is the log's origin.
func VerifyNote(signed []byte, name string, key ed25519.PublicKey) error {
	vkey, err := note.NewEd25519VerifierKey(name, key)
	if err != nil {
		return err
	}
	v, err := note.NewVerifier(vkey)
	if err != nil {
		return err
	}
	if _, err := note.Open(signed, note.VerifierList(v)); err != nil {
		return fmt.Errorf("archive checkpoint note: %w", err)
	}
	return nil
}
