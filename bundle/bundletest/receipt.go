package bundletest

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"

	"golang.org/x/mod/sumdb/note"

	"github.com/edgeseal/edgeseal/bundle/archivesig"
	"github.com/edgeseal/edgeseal/bundle/merkle"
	"github.com/edgeseal/edgeseal/bundle/wire"
)

// ArchiveKey signs receipts as the archive does, each for a one-entry
// archive log whose checkpoint is a signed note, as DSSE with Ed25519.
type ArchiveKey struct {
	KeyID string // "archive-test-1"
	Pub   ed25519.PublicKey
	Priv  ed25519.PrivateKey
	Note  note.Signer // signs the archive checkpoint, key name "archive.test"
}

// NewArchiveKey returns an ArchiveKey with new keys.
func NewArchiveKey() (*ArchiveKey, error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	skey, _, err := note.GenerateKey(rand.Reader, "archive.test")
	if err != nil {
		return nil, err
	}
	ns, err := note.NewSigner(skey)
	if err != nil {
		return nil, err
	}
	return &ArchiveKey{KeyID: "archive-test-1", Pub: pub, Priv: priv, Note: ns}, nil
}

// Receipt returns the signed receipt for the bundle of SHA-256 digest
// from device ("<site>/<name>").
func (k *ArchiveKey) Receipt(digest [32]byte, device string) ([]byte, error) {
	r := &archivesig.Receipt{
		BundleDigest: wire.FormatHash(digest), Device: device, CheckpointSize: 1,
		CheckpointRoot: wire.FormatHash(sha256.Sum256(digest[:])), RetentionUntil: "2033-11-26T00:00:00.000000Z",
	}
	entry, err := r.Entry().Marshal()
	if err != nil {
		return nil, err
	}
	body := merkle.Checkpoint{Origin: "edgeseal-archive/test", Size: 1, Root: merkle.LeafHash(entry)}.Marshal()
	signed, err := note.Sign(&note.Note{Text: string(body)}, k.Note)
	if err != nil {
		return nil, err
	}
	r.ArchiveCheckpoint = string(signed)
	return archivesig.SignReceipt(r, k.KeyID, k.Priv)
}
