package archive

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"golang.org/x/mod/sumdb/note"

	"github.com/edgeseal/edgeseal/bundle"
	"github.com/edgeseal/edgeseal/store"
)

// DefaultName is the archive log's checkpoint origin and note key name.
const DefaultName = "edgeseal-archive"

// noteKeys returns the C2SP note signer of an Ed25519 key and its
// verifier key string ("<name>+<hash>+<base64 key>").
func noteKeys(name string, key ed25519.PrivateKey) (note.Signer, string, error) {
	vkey, err := note.NewEd25519VerifierKey(name, key.Public().(ed25519.PublicKey))
	if err != nil {
		return nil, "", fmt.Errorf("archive: note key: %w", err)
	}
	parts := strings.SplitN(vkey, "+", 3)
	if len(parts) != 3 {
		return nil, "", fmt.Errorf("archive: note key %q: unexpected form", vkey)
	}
	skey := "PRIVATE+KEY+" + name + "+" + parts[1] + "+" + base64.StdEncoding.EncodeToString(append([]byte{1}, key.Seed()...))
	s, err := note.NewSigner(skey)
	if err != nil {
		return nil, "", fmt.Errorf("archive: note signer: %w", err)
	}
	return s, vkey, nil
}

// archiveLog is the archive's own Merkle log: one record per accepted
// bundle, the canonical bundle.ReceiptEntry, keyed by the bundle digest;
// its checkpoints are C2SP signed notes stored beside it.
type archiveLog struct {
	j      *store.Journal
	signer note.Signer
	origin string
}

// append journals the entry of an accepted bundle, once: a digest
// already journaled returns its original index.
func (l *archiveLog) append(ctx context.Context, digest [32]byte, entry []byte) (uint64, error) {
	a, err := l.j.Append(ctx, store.Entry{
		Build: func(uint64, [32]byte) ([]byte, error) { return entry, nil },
		Key:   digest[:],
	})
	var dup *store.DuplicateError
	if errors.As(err, &dup) {
		rec, rerr := l.j.Record(dup.Seq)
		if rerr != nil {
			return 0, fmt.Errorf("archive: log: %w", rerr)
		}
		if string(rec) != string(entry) {
			return 0, fmt.Errorf("archive: log record %d for sha256:%x holds another entry", dup.Seq, digest)
		}
		return dup.Seq, nil
	}
	if err != nil {
		return 0, fmt.Errorf("archive: log: %w", err)
	}
	return a.Seq, nil
}

// checkpoint returns the signed note of the log at size, storing it.
func (l *archiveLog) checkpoint(ctx context.Context, size uint64) ([]byte, error) {
	root, err := l.j.Root(size)
	if err != nil {
		return nil, fmt.Errorf("archive: log root: %w", err)
	}
	body := bundle.Checkpoint{Origin: l.origin, Size: size, Root: root}.Marshal()
	signed, err := note.Sign(&note.Note{Text: string(body)}, l.signer)
	if err != nil {
		return nil, fmt.Errorf("archive: sign checkpoint: %w", err)
	}
	if err := l.j.PutCheckpoint(ctx, size, signed); err != nil {
		return nil, fmt.Errorf("archive: %w", err)
	}
	return signed, nil
}

// receipt signs the receipt of log entry seq against the current size.
func (a *Archive) receipt(ctx context.Context, seq uint64, e bundle.ReceiptEntry, retention string) ([]byte, error) {
	size := a.log.j.Size()
	signed, err := a.log.checkpoint(ctx, size)
	if err != nil {
		return nil, err
	}
	proof, err := a.log.j.InclusionProof(seq, size)
	if err != nil {
		return nil, fmt.Errorf("archive: inclusion proof: %w", err)
	}
	r := &bundle.Receipt{
		BundleDigest: e.BundleDigest, Device: e.Device, CheckpointSize: e.CheckpointSize, CheckpointRoot: e.CheckpointRoot,
		LogIndex: seq, ArchiveCheckpoint: string(signed), RetentionUntil: retention,
	}
	for _, h := range proof {
		r.InclusionProof = append(r.InclusionProof, h[:])
	}
	return bundle.SignReceipt(r, a.keyID, a.key)
}

// Checkpoint returns the signed note of the archive log at its current
// size (an empty log has none: ErrNotFound).
func (a *Archive) Checkpoint(ctx context.Context) ([]byte, error) {
	size := a.log.j.Size()
	if size == 0 {
		return nil, fmt.Errorf("archive: checkpoint of an empty log: %w", ErrNotFound)
	}
	return a.log.checkpoint(ctx, size)
}

// LogSize is the number of bundles in the archive log.
func (a *Archive) LogSize() uint64 { return a.log.j.Size() }

// InclusionProof proves log entry index in the tree of size.
func (a *Archive) InclusionProof(index, size uint64) ([][32]byte, error) {
	return a.log.j.InclusionProof(index, size)
}
