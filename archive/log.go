package archive

import (
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"

	"github.com/edgeseal/edgeseal/bundle/merkle"
	"github.com/edgeseal/edgeseal/store"
)

// DefaultName is the archive log's checkpoint origin and note key name.
const DefaultName = "edgeseal-archive"

// noteKeys returns the C2SP note signer of an Ed25519 key and its
// verifier key string ("<name>+<hash>+<base64 key>").
func noteKeys(name string, key crypto.Signer) (note.Signer, string, error) {
	pub, ok := key.Public().(ed25519.PublicKey)
	if !ok {
		return nil, "", errors.New("archive: note key: not an Ed25519 key")
	}
	vkey, err := note.NewEd25519VerifierKey(name, pub)
	if err != nil {
		return nil, "", fmt.Errorf("archive: note key: %w", err)
	}
	parts := strings.SplitN(vkey, "+", 3)
	if len(parts) != 3 {
		return nil, "", fmt.Errorf("archive: note key %q: unexpected form", vkey)
	}
	hash, err := strconv.ParseUint(parts[1], 16, 32)
	if err != nil {
		return nil, "", fmt.Errorf("archive: note key %q: %w", vkey, err)
	}
	return &noteSigner{name: name, hash: uint32(hash), key: key}, vkey, nil
}

// noteSigner signs notes with an Ed25519 crypto.Signer (a key in memory
// or in a token).
type noteSigner struct {
	name string
	hash uint32
	key  crypto.Signer
}

func (s *noteSigner) Name() string    { return s.name }
func (s *noteSigner) KeyHash() uint32 { return s.hash }
func (s *noteSigner) Sign(msg []byte) ([]byte, error) {
	return s.key.Sign(rand.Reader, msg, crypto.Hash(0))
}

// signedJournal is a store.Journal whose checkpoints the archive signs
// (the access log): C2SP signed notes stored beside it.
type signedJournal struct {
	j      *store.Journal
	signer note.Signer
	origin string
}

// checkpoint returns the signed note of the log at size, storing it.
func (l *signedJournal) checkpoint(ctx context.Context, size uint64) ([]byte, error) {
	signed, err := l.sign(size)
	if err != nil {
		return nil, err
	}
	if err := l.store(ctx, size, signed); err != nil {
		return nil, err
	}
	return signed, nil
}

// sign returns the signed note of the log at size.
func (l *signedJournal) sign(size uint64) ([]byte, error) {
	root, err := l.j.Root(size)
	if err != nil {
		return nil, fmt.Errorf("archive: log root: %w", err)
	}
	body := merkle.Checkpoint{Origin: l.origin, Size: size, Root: root}.Marshal()
	signed, err := note.Sign(&note.Note{Text: string(body)}, l.signer)
	if err != nil {
		return nil, fmt.Errorf("archive: sign checkpoint: %w", err)
	}
	return signed, nil
}

// store keeps the signed note of size beside the log (durably).
func (l *signedJournal) store(ctx context.Context, size uint64, signed []byte) error {
	if err := l.j.PutCheckpoint(ctx, size, signed); err != nil {
		return fmt.Errorf("archive: %w", err)
	}
	return nil
}

// Checkpoint returns the signed note of the archive log at its current
// size (an empty log has none: ErrNotFound).
func (a *Archive) Checkpoint(ctx context.Context) ([]byte, error) {
	a.keyMu.RLock() // not across a key rotation
	defer a.keyMu.RUnlock()
	size := a.log.size()
	if size == 0 {
		return nil, fmt.Errorf("archive: checkpoint of an empty log: %w", ErrNotFound)
	}
	return a.log.checkpoint(ctx, size)
}

// LogSize is the number of bundles in the archive log.
func (a *Archive) LogSize() uint64 { return a.log.size() }

// InclusionProof proves log entry index in the tree of size.
func (a *Archive) InclusionProof(index, size uint64) ([][32]byte, error) {
	return a.log.inclusionProof(context.Background(), index, size)
}
