package bundletest

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"fmt"
	"strconv"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/edgeseal/edgeseal/bundle"
	"github.com/edgeseal/edgeseal/bundle/archivesig"
	"github.com/edgeseal/edgeseal/bundle/merkle"
	"github.com/edgeseal/edgeseal/bundle/wire"
)

// ArchiveLog is an archive's log as the archive keeps it, in memory: one
// receipt entry per accepted bundle, each checkpoint a C2SP signed note by
// the archive's Ed25519 key (note key name = the log's origin), receipts
// signed by the same key. Unlike ArchiveKey it keeps every entry, so it
// proves inclusion and consistency between any two of its sizes.
type ArchiveLog struct {
	Name string // the log's origin, "edgeseal-archive"
	Pub  ed25519.PublicKey
	Priv ed25519.PrivateKey
	// NoConsistency leaves the consistency members out of the receipts
	// (as an archive that does not give them).
	NoConsistency bool

	last   map[string]uint64 // device -> its previous receipt's checkpoint size
	leaves [][32]byte
	note   noteSigner
	chain  [][]byte // key announcements, oldest first
	root   ed25519.PublicKey
}

// NewArchiveLog returns an empty log with a new key.
func NewArchiveLog() (*ArchiveLog, error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	l := &ArchiveLog{Name: "edgeseal-archive", Pub: pub, Priv: priv, root: pub}
	return l, l.setNote()
}

func (l *ArchiveLog) setNote() error {
	vkey, err := note.NewEd25519VerifierKey(l.Name, l.Pub)
	if err != nil {
		return err
	}
	hash, err := strconv.ParseUint(strings.SplitN(vkey, "+", 3)[1], 16, 32)
	if err != nil {
		return err
	}
	l.note = noteSigner{name: l.Name, hash: uint32(hash), key: l.Priv}
	return nil
}

// Root is the log's first key, the one a verifier pins.
func (l *ArchiveLog) Root() ed25519.PublicKey { return l.root }

// Rotate switches the log to a new key, announced signed by the old and
// the new key as the archive does (no overlap); later receipts carry the
// announcements and are signed, with their checkpoints, by the new key.
func (l *ArchiveLog) Rotate() error {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return err
	}
	now := wire.FormatTime(time.Now())
	a := &archivesig.ArchiveKeyAnnouncement{Origin: l.Name, Seq: uint64(len(l.chain) + 1), Time: now, OverlapUntil: now, LogSize: l.Size()}
	ann, err := archivesig.SignArchiveKey(a, l.KeyID(), l.Priv, priv)
	if err != nil {
		return err
	}
	l.chain = append(l.chain, ann)
	l.Pub, l.Priv = pub, priv
	return l.setNote()
}

// PKIX is the archive key as PKIX DER.
func (l *ArchiveLog) PKIX() []byte {
	der, _ := x509.MarshalPKIXPublicKey(l.Pub)
	return der
}

// KeyID is the archive key's id.
func (l *ArchiveLog) KeyID() string { return archivesig.ArchiveKeyID(l.Pub) }

// Size is the number of entries logged.
func (l *ArchiveLog) Size() uint64 { return uint64(len(l.leaves)) }

// Accept logs b's receipt entry and returns the receipt, with the
// checkpoint of the log at its new size.
func (l *ArchiveLog) Accept(b *bundle.Bundle) ([]byte, error) {
	rcs, err := l.AcceptGroup(b)
	if err != nil {
		return nil, err
	}
	return rcs[0], nil
}

// AcceptGroup logs the receipt entries of bs, in order, and returns their
// receipts, each with the checkpoint of the log after the last of them
// and the consistency proof from the device's previous receipt, as the
// archive answers the bundles it admits together.
func (l *ArchiveLog) AcceptGroup(bs ...*bundle.Bundle) ([][]byte, error) {
	rs := make([]*archivesig.Receipt, len(bs))
	for i, b := range bs {
		_, st, err := b.Statement()
		if err != nil {
			return nil, err
		}
		cp, err := merkle.ParseCheckpoint([]byte(st.Predicate.Checkpoint))
		if err != nil {
			return nil, err
		}
		d, err := b.Digest()
		if err != nil {
			return nil, err
		}
		device := strings.TrimPrefix(cp.Origin, "edgeseal/")
		r := &archivesig.Receipt{BundleDigest: wire.FormatHash(d), Device: device, CheckpointSize: cp.Size,
			CheckpointRoot: wire.FormatHash(cp.Root), LogIndex: l.Size(),
			RetentionUntil: wire.FormatTime(time.Date(2033, 11, 26, 0, 0, 0, 0, time.UTC))}
		entry, err := r.Entry().Marshal()
		if err != nil {
			return nil, err
		}
		l.leaves = append(l.leaves, merkle.LeafHash(entry))
		rs[i] = r
	}
	size := l.Size()
	signed, err := l.Checkpoint(size)
	if err != nil {
		return nil, err
	}
	from := map[string]uint64{}
	out := make([][]byte, len(rs))
	for i, r := range rs {
		proof, err := merkle.InclusionProof(l.tree().Hash, r.LogIndex, size)
		if err != nil {
			return nil, err
		}
		r.ArchiveCheckpoint, r.InclusionProof = string(signed), merkle.ProofBytes(proof)
		prev, seen := from[r.Device]
		if !seen {
			prev = l.last[r.Device]
			from[r.Device] = prev
		}
		if prev > 0 && !l.NoConsistency {
			cons, err := l.Consistency(prev, size)
			if err != nil {
				return nil, err
			}
			r.WitnessFrom = prev
			if len(cons) > 0 {
				r.WitnessProof = merkle.ProofBytes(cons)
			}
		}
		if l.last == nil {
			l.last = map[string]uint64{}
		}
		l.last[r.Device] = size
		if len(l.chain) > 0 {
			r.KeyChain = l.chain
		}
		if out[i], err = archivesig.SignReceipt(r, l.KeyID(), l.Priv); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// Again is the archive's answer to a bundle sent again whose receipt
// was receipt when the device cannot take that one (archive/repeat.go):
// a fresh receipt for the same entry against the log's current size,
// with the consistency proof from size from (0: the checkpoint of the
// device's newest receipt), which it leaves where it was.
func (l *ArchiveLog) Again(receipt []byte, from uint64) ([]byte, error) {
	_, r, err := archivesig.ParseReceipt(receipt)
	if err != nil {
		return nil, err
	}
	size := l.Size()
	if from == 0 {
		from = l.last[r.Device]
	}
	signed, err := l.Checkpoint(size)
	if err != nil {
		return nil, err
	}
	proof, err := merkle.InclusionProof(l.tree().Hash, r.LogIndex, size)
	if err != nil {
		return nil, err
	}
	f := *r
	f.ArchiveCheckpoint, f.InclusionProof, f.WitnessFrom, f.WitnessProof, f.KeyChain = string(signed), merkle.ProofBytes(proof), 0, nil, nil
	if len(l.chain) > 0 {
		f.KeyChain = l.chain
	}
	if from > 0 {
		cons, err := l.Consistency(from, size)
		if err != nil {
			return nil, err
		}
		f.WitnessFrom = from
		if len(cons) > 0 {
			f.WitnessProof = merkle.ProofBytes(cons)
		}
	}
	return archivesig.SignReceipt(&f, l.KeyID(), l.Priv)
}

// Checkpoint returns the signed note of the log at size.
func (l *ArchiveLog) Checkpoint(size uint64) ([]byte, error) {
	if size == 0 || size > l.Size() {
		return nil, fmt.Errorf("bundletest: archive checkpoint of %d, log of %d", size, l.Size())
	}
	root, err := l.tree().Hash(0, size)
	if err != nil {
		return nil, err
	}
	body := merkle.Checkpoint{Origin: l.Name, Size: size, Root: root}.Marshal()
	return note.Sign(&note.Note{Text: string(body)}, l.note)
}

// Consistency proves the log of size old a prefix of the log of size.
func (l *ArchiveLog) Consistency(old, size uint64) ([][32]byte, error) {
	if size > l.Size() {
		return nil, fmt.Errorf("bundletest: consistency to %d, log of %d", size, l.Size())
	}
	return merkle.ConsistencyProof(l.tree().Hash, old, size)
}

func (l *ArchiveLog) tree() *merkle.Partial { return &merkle.Partial{Leaves: l.leaves} }

type noteSigner struct {
	name string
	hash uint32
	key  ed25519.PrivateKey
}

func (s noteSigner) Name() string                    { return s.name }
func (s noteSigner) KeyHash() uint32                 { return s.hash }
func (s noteSigner) Sign(msg []byte) ([]byte, error) { return ed25519.Sign(s.key, msg), nil }

// KeyChain returns the log's key announcements, oldest first: what a
// proof of a receipt signed by an earlier key carries.
func (l *ArchiveLog) KeyChain() [][]byte { return l.chain }

// Fork returns an empty log under l's key and name: the second log of an
// archive that equivocates (its checkpoints and receipts verify under
// the same key as l's).
func (l *ArchiveLog) Fork() (*ArchiveLog, error) {
	f := &ArchiveLog{Name: l.Name, Pub: l.Pub, Priv: l.Priv, root: l.root, chain: l.chain, NoConsistency: l.NoConsistency}
	return f, f.setNote()
}
