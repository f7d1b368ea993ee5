package archivesig_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/edgeseal/edgeseal/bundle/archivesig"
	"github.com/edgeseal/edgeseal/bundle/merkle"
	"github.com/edgeseal/edgeseal/bundle/wire"
)

// archiveReceipt builds an archive log of n entries and a receipt for
// entry idx, signed into a note and a DSSE envelope.
func archiveReceipt(t testing.TB, n, idx int) (raw []byte, pub ed25519.PublicKey, r *archivesig.Receipt) {
	t.Helper()
	var s hashStore
	var target *archivesig.Receipt
	for i := range n {
		d := sha256.Sum256(fmt.Appendf(nil, "bundle %d", i))
		rc := &archivesig.Receipt{
			BundleDigest: wire.FormatHash(d), Device: "site1/dev1", CheckpointSize: uint64(8 * (i + 1)),
			CheckpointRoot: wire.FormatHash(sha256.Sum256(d[:])), LogIndex: uint64(i), RetentionUntil: "2033-11-26T00:00:00.000000Z",
		}
		entry, err := rc.Entry().Marshal()
		if err != nil {
			t.Fatal(err)
		}
		hs, err := tlog.StoredHashes(int64(i), entry, s)
		if err != nil {
			t.Fatal(err)
		}
		s = append(s, hs...)
		if i == idx {
			target = rc
		}
	}
	root, _ := tlog.TreeHash(int64(n), s)
	skey, _, err := note.GenerateKey(rand.Reader, "archive.example")
	if err != nil {
		t.Fatal(err)
	}
	signer, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	body := merkle.Checkpoint{Origin: "edgeseal-archive/example", Size: uint64(n), Root: root}.Marshal()
	signed, err := note.Sign(&note.Note{Text: string(body)}, signer)
	if err != nil {
		t.Fatal(err)
	}
	proof, err := tlog.ProveRecord(int64(n), int64(idx), s)
	if err != nil {
		t.Fatal(err)
	}
	target.ArchiveCheckpoint = string(signed)
	for _, h := range proof {
		target.InclusionProof = append(target.InclusionProof, append([]byte(nil), h[:]...))
	}
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	raw, err = archivesig.SignReceipt(target, "archive-1", priv)
	if err != nil {
		t.Fatal(err)
	}
	return raw, pub, target
}

func TestReceipt(t *testing.T) {
	raw, pub, want := archiveReceipt(t, 13, 6)
	got, err := archivesig.VerifyReceipt(raw, "archive-1", pub)
	if err != nil {
		t.Fatal(err)
	}
	if got.BundleDigest != want.BundleDigest || got.LogIndex != 6 || got.RetentionTime().Year() != 2033 {
		t.Errorf("receipt %+v", got)
	}
	if _, err := archivesig.VerifyReceipt(raw, "archive-2", pub); err == nil {
		t.Error("other key id accepted")
	}
	otherPub, _, _ := ed25519.GenerateKey(rand.Reader)
	if _, err := archivesig.VerifyReceipt(raw, "archive-1", otherPub); err == nil {
		t.Error("other key accepted")
	}
	// A receipt whose proof does not put the entry in the archive log is
	// refused even when signed.
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	bad := *want
	bad.LogIndex = 5
	if _, err := archivesig.SignReceipt(&bad, "archive-1", priv); err == nil {
		t.Error("receipt with wrong log index signed")
	}
	bad = *want
	bad.ArchiveCheckpoint = strings.Replace(bad.ArchiveCheckpoint, "\n\n", "\n", 1)
	if _, err := archivesig.SignReceipt(&bad, "archive-1", priv); err == nil {
		t.Error("receipt without signed note signed")
	}
}
