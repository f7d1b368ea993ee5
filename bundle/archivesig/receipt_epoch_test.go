package archivesig_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"strings"
	"testing"

	"github.com/edgeseal/edgeseal/bundle/archivesig"
)

// The device's epoch at the archive is part of the receipt's log entry:
// absent for epoch 1 (the entry as before epochs existed), written for
// later epochs, and covered by the inclusion proof, so a receipt whose
// epoch was changed does not prove its entry.
func TestReceiptEpoch(t *testing.T) {
	e := archivesig.ReceiptEntry{BundleDigest: "sha256:" + strings.Repeat("ab", 32), Device: "site1/dev1", CheckpointSize: 8,
		CheckpointRoot: "sha256:" + strings.Repeat("cd", 32)}
	one, err := e.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"bundleDigest":"sha256:` + strings.Repeat("ab", 32) + `","checkpointRoot":"sha256:` + strings.Repeat("cd", 32) +
		`","checkpointSize":8,"device":"site1/dev1"}`; string(one) != want {
		t.Fatalf("epoch 1 entry %s, want %s", one, want)
	}
	e.Epoch = 2
	two, err := e.Marshal()
	if err != nil || !strings.Contains(string(two), `"epoch":2`) {
		t.Fatalf("epoch 2 entry %s: %v", two, err)
	}

	_, _, r := archiveReceipt(t, 5, 3)
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	bad := *r
	bad.Epoch = 2
	if _, err := archivesig.SignReceipt(&bad, "archive-1", priv); err == nil || !strings.Contains(err.Error(), "receipt") {
		t.Fatalf("a receipt whose epoch is not its log entry's was signed: %v", err)
	}
}
