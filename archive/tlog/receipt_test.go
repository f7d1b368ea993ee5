package tlog_test

import (
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/edgeseal/edgeseal/archive/tlog"
	"github.com/edgeseal/edgeseal/bundle/archivesig"
	"github.com/edgeseal/edgeseal/bundle/merkle"
	"github.com/edgeseal/edgeseal/bundle/proof"
	"github.com/edgeseal/edgeseal/bundle/wire"
)

// keySigner is a C2SP note signer over an Ed25519 crypto.Signer, as the
// archive signs with its key (in memory or in a token).
type keySigner struct {
	name string
	hash uint32
	key  crypto.Signer
}

func (s *keySigner) Name() string    { return s.name }
func (s *keySigner) KeyHash() uint32 { return s.hash }
func (s *keySigner) Sign(msg []byte) ([]byte, error) {
	return s.key.Sign(rand.Reader, msg, crypto.Hash(0))
}

// TestReceiptFromTesseraLog builds an archive receipt from the Tessera
// log the way the archive would (append the receipt entry, wait for a
// checkpoint covering it, prove inclusion in it) and checks that the
// receipt keeps its format: archivesig parses and verifies it, and the
// checkpoint note verifies under the archive's Ed25519 key by the
// verifier's own rule.
func TestReceiptFromTesseraLog(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	const origin = "edgeseal-archive"
	vkey, err := note.NewEd25519VerifierKey(origin, pub)
	if err != nil {
		t.Fatal(err)
	}
	hash, err := strconv.ParseUint(strings.Split(vkey, "+")[1], 16, 32)
	if err != nil {
		t.Fatal(err)
	}
	v, err := note.NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	l, err := tlog.OpenPOSIX(ctx, tlog.POSIXOptions{Dir: t.TempDir(), Signer: &keySigner{origin, uint32(hash), priv}, Verifier: v, CheckpointInterval: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close(ctx)

	for i := range 3 { // the entry is not the first
		if _, err := l.Append(ctx, []byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
	}
	var digest, root [32]byte
	digest[0], root[0] = 1, 2
	entry := archivesig.ReceiptEntry{BundleDigest: wire.FormatHash(digest), Device: "site-a/cam-1", CheckpointSize: 7, CheckpointRoot: wire.FormatHash(root)}
	rec, err := entry.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	idx, err := l.Append(ctx, rec)
	if err != nil {
		t.Fatal(err)
	}
	cp, err := l.AwaitCheckpoint(ctx, idx+1)
	if err != nil {
		t.Fatal(err)
	}
	p, err := l.InclusionProof(ctx, idx, cp.Size)
	if err != nil {
		t.Fatal(err)
	}
	r := &archivesig.Receipt{
		BundleDigest: entry.BundleDigest, Device: entry.Device, CheckpointSize: entry.CheckpointSize, CheckpointRoot: entry.CheckpointRoot,
		LogIndex: idx, ArchiveCheckpoint: string(cp.Note), InclusionProof: merkle.ProofBytes(p),
		RetentionUntil: wire.FormatTime(time.Now().Add(time.Hour)),
	}
	signed, err := archivesig.SignReceipt(r, "archive-key-1", priv)
	if err != nil {
		t.Fatal(err)
	}
	got, err := archivesig.VerifyReceipt(signed, "archive-key-1", pub)
	if err != nil {
		t.Fatalf("receipt: %v", err)
	}
	if got.LogIndex != idx || got.ArchiveCheckpoint != string(cp.Note) {
		t.Fatalf("receipt names entry %d of %q", got.LogIndex, got.ArchiveCheckpoint)
	}
	if err := proof.VerifyNote([]byte(got.ArchiveCheckpoint), origin, pub); err != nil {
		t.Fatalf("checkpoint note under the archive key: %v", err)
	}
}
