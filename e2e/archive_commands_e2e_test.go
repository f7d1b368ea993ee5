package e2e

import (
	"crypto/ed25519"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/edgeseal/edgeseal/archive"
	"github.com/edgeseal/edgeseal/bundle/archivesig"
	"github.com/edgeseal/edgeseal/bundle/bundletest"
)

// TestArchiveCommands: enroll-file, devices approve/list/revoke and
// import DIR with receipts written to DIR/receipts.
func TestArchiveCommands(t *testing.T) {
	data := t.TempDir()
	c, err := bundletest.NewChain(t.Context(), nil, 2, bundletest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	media := t.TempDir()
	bundletest.MustWriteMedia(t, media, c.Bundles...)
	if out, code := runCmd(t, "archive", "import", media, "--data-dir", data); code != 1 || !strings.Contains(out, "archive.enrolled") {
		t.Fatalf("import from an unenrolled device: exit %d\n%s", code, out)
	}
	out, code := runCmd(t, "archive", "enroll-file", writeTrust(t, c), "--data-dir", data)
	if code != 0 || !strings.Contains(out, "status pending") {
		t.Fatalf("enroll-file exit %d\n%s", code, out)
	}
	if out, code := runCmd(t, "archive", "devices", "approve", "site1/dev1", "--key", c.Trust.KeyID, "--no-activation", "--by", "alice", "--data-dir", data); code != 0 || !strings.Contains(out, "approved") {
		t.Fatalf("approve exit %d\n%s", code, out)
	}
	out, code = runCmd(t, "archive", "import", media, "--data-dir", data)
	if code != 0 || !strings.Contains(out, "2 accepted, 0 refused") {
		t.Fatalf("import exit %d\n%s", code, out)
	}
	receipts, _ := filepath.Glob(filepath.Join(media, "receipts", "*.receipt.json"))
	if len(receipts) != 2 {
		t.Fatalf("%d receipts", len(receipts))
	}
	key, _, err := loadOrCreateArchiveKey(filepath.Join(data, "archive.key"))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range receipts {
		b, _ := os.ReadFile(p)
		if _, err := archivesig.VerifyReceipt(b, archive.KeyID(key.Public().(ed25519.PublicKey)), key.Public().(ed25519.PublicKey)); err != nil {
			t.Fatalf("%s: %v", p, err)
		}
	}
	if fi, err := os.Stat(filepath.Join(data, "archive.key")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v, %v", fi.Mode(), err)
	}
	out, code = runCmd(t, "archive", "devices", "list", "--data-dir", data)
	if code != 0 || !strings.Contains(out, "site1/dev1") || !strings.Contains(out, "approved") {
		t.Fatalf("list exit %d\n%s", code, out)
	}
	if out, code := runCmd(t, "archive", "devices", "revoke", "site1/dev1", "--data-dir", data); code != 2 {
		t.Fatalf("revoke without a reason: exit %d\n%s", code, out)
	}
	if out, code := runCmd(t, "archive", "devices", "revoke", "site1/dev1", "--reason", "stolen", "--data-dir", data); code != 0 || !strings.Contains(out, "revoked") {
		t.Fatalf("revoke exit %d\n%s", code, out)
	}
}
