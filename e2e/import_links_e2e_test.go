package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/edgeseal/edgeseal/bundle/bundletest"
)

// TestArchiveImportRefusesSymlinks runs the real `edgeseal archive import`:
// media whose receipts folder, or one of whose bundle files, is a symbolic
// link is refused (exit 1, the link named) and nothing is written through
// the link; the same media with real files imports.
func TestArchiveImportRefusesSymlinks(t *testing.T) {
	needBinary(t)
	data := t.TempDir()
	c, err := bundletest.NewChain(t.Context(), nil, 1, bundletest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if out, code := cliEnv(t, nil, "archive", "enroll-file", writeTrust(t, c), "--data-dir", data); code != 0 {
		t.Fatalf("enroll-file exit %d\n%s", code, out)
	}
	if out, code := cliEnv(t, nil, "archive", "devices", "approve", "site1/dev1", "--key", c.Trust.KeyID, "--no-activation", "--by", "alice", "--data-dir", data); code != 0 {
		t.Fatalf("approve exit %d\n%s", code, out)
	}
	name, _ := c.Bundles[0].FileName()
	raw, _ := c.Bundles[0].Bytes()

	// A receipts folder pointing elsewhere.
	media, elsewhere := t.TempDir(), t.TempDir()
	if err := os.WriteFile(filepath.Join(media, name), raw, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(elsewhere, filepath.Join(media, "receipts")); err != nil {
		t.Fatal(err)
	}
	out, code := cliEnv(t, nil, "archive", "import", media, "--data-dir", data)
	if code != 1 || !strings.Contains(out, "receipts folder "+filepath.Join(media, "receipts")+" is a symbolic link") {
		t.Fatalf("import with a symlinked receipts folder: exit %d, want 1 naming the link:\n%s", code, out)
	}
	if ents, _ := os.ReadDir(elsewhere); len(ents) != 0 {
		t.Fatalf("answers written through the link: %v", ents)
	}

	// A bundle file that is a link to a file elsewhere.
	media2 := t.TempDir()
	if err := os.WriteFile(filepath.Join(elsewhere, name), raw, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(elsewhere, name), filepath.Join(media2, name)); err != nil {
		t.Fatal(err)
	}
	out, code = cliEnv(t, nil, "archive", "import", media2, "--data-dir", data)
	if code != 1 || !strings.Contains(out, "bundle file "+filepath.Join(media2, name)+" is a symbolic link") {
		t.Fatalf("import of a symlinked bundle file: exit %d, want 1 naming the link:\n%s", code, out)
	}

	// The real files import.
	if err := os.Remove(filepath.Join(media, "receipts")); err != nil {
		t.Fatal(err)
	}
	if out, code := cliEnv(t, nil, "archive", "import", media, "--data-dir", data); code != 0 || !strings.Contains(out, "1 accepted, 0 refused") {
		t.Fatalf("import of real files: exit %d\n%s", code, out)
	}
}
