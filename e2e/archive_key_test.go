package e2e

import (
	"crypto/ed25519"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edgeseal/edgeseal/agent/agentd"
	"github.com/edgeseal/edgeseal/archive"
	"github.com/edgeseal/edgeseal/archive/archived"
	"github.com/edgeseal/edgeseal/archive/keystore"
	"github.com/edgeseal/edgeseal/bundle/archivesig"
	"github.com/edgeseal/edgeseal/bundle/bundletest"
)

// receiveOne opens the stopped archive in dir with signer, accepts
// bundle i of c (enrolling c's device first if asked) and returns the
// receipt, written to a file.
func receiveOne(t *testing.T, dir string, signer ed25519.PrivateKey, c *bundletest.Chain, i int, enroll bool) string {
	t.Helper()
	a, err := archive.Open(t.Context(), archive.Options{Dir: dir, Key: signer})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if enroll {
		enrollChain(t, a, c)
	}
	raw, _ := c.Bundles[i].Bytes()
	reply, err := a.Receive(t.Context(), c.Opts.Site, c.Opts.Device, raw)
	if err != nil {
		t.Fatal(err)
	}
	return writeTemp(t, "receipt.json", reply)
}

// TestArchiveKeyRotateCLI: `archive key rotate` on a stopped archive
// replaces the key file (the old one kept 0600 for the operator), logs
// the announcement; `verify receipt` with the old public key verifies
// receipts from before and after, printing the rotation; another key is
// refused; `archive key show` lists it; a key file readable by others or
// symlinked is refused.
func TestArchiveKeyRotateCLI(t *testing.T) {
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "archive.key")
	old, created, err := archived.LoadOrCreateKey(keyFile)
	if err != nil || !created {
		t.Fatal(err)
	}
	oldPub := filepath.Join(t.TempDir(), "old.pub")
	if err := keystore.WritePublic(oldPub, old.Public().(ed25519.PublicKey)); err != nil {
		t.Fatal(err)
	}
	c, err := bundletest.NewChain(t.Context(), nil, 2, bundletest.Options{Site: "site1", Device: "dev1"})
	if err != nil {
		t.Fatal(err)
	}
	r0 := receiveOne(t, dir, old, c, 0, true)

	out, code := runCmd(t, "archive", "key", "rotate", "--data-dir", dir, "--overlap", "2h")
	if code != 0 || !strings.Contains(out, "archive key rotated: "+archivesig.ArchiveKeyID(old.Public().(ed25519.PublicKey))) {
		t.Fatalf("rotate: %d\n%s", code, out)
	}
	next, err := keystore.LoadFile(keyFile)
	if err != nil || next.Equal(old) {
		t.Fatalf("key file after rotation: %v (unchanged: %v)", err, next.Equal(old))
	}
	if pub, err := agentd.ReadArchiveKey(keyFile + ".pub"); err != nil || !pub.Equal(next.Public()) {
		t.Fatalf("public key file: %v", err)
	}
	retired, _ := filepath.Glob(keyFile + ".retired-*")
	if len(retired) != 1 {
		t.Fatalf("retired key files %v", retired)
	}
	if k, err := keystore.LoadFile(retired[0]); err != nil || !k.Equal(old) {
		t.Fatalf("retired key: %v", err)
	}
	if _, err := os.Stat(keyFile + ".next"); !os.IsNotExist(err) {
		t.Fatalf("next key file left: %v", err)
	}
	r1 := receiveOne(t, dir, next, c, 1, false)

	out, code = runCmd(t, "verify", "receipt", "--archive-key", oldPub, r0, r1)
	if code != 0 || !strings.Contains(out, "archive key rotated") || strings.Count(out, ": verified") != 2 ||
		!strings.Contains(out, "signed by "+archivesig.ArchiveKeyID(next.Public().(ed25519.PublicKey))) {
		t.Fatalf("verify receipt: %d\n%s", code, out)
	}
	other, _ := keystore.Generate()
	otherPub := filepath.Join(t.TempDir(), "other.pub")
	keystore.WritePublic(otherPub, other.Public().(ed25519.PublicKey))
	out, code = runCmd(t, "verify", "receipt", "--archive-key", otherPub, r1)
	if code != 1 || !strings.Contains(out, "NOT VERIFIED") || !strings.Contains(out, "a key not trusted") {
		t.Fatalf("verify receipt against another key: %d\n%s", code, out)
	}

	out, code = runCmd(t, "archive", "key", "show", "--data-dir", dir)
	if code != 0 || !strings.Contains(out, "rotation 1 at") || !strings.Contains(out, "log size 1") {
		t.Fatalf("show: %d\n%s", code, out)
	}

	// Key file permissions and links.
	os.Chmod(keyFile, 0o640)
	out, code = runCmd(t, "archive", "key", "show", "--data-dir", dir)
	if code == 0 || !strings.Contains(out, "group or others") {
		t.Fatalf("group-readable key: %d\n%s", code, out)
	}
	if _, _, err := archived.LoadOrCreateKey(keyFile); err == nil || !strings.Contains(err.Error(), "group or others") {
		t.Fatalf("daemon start with a group-readable key: %v", err)
	}
	os.Chmod(keyFile, 0o600)
	link := filepath.Join(t.TempDir(), "archive.key")
	os.Symlink(keyFile, link)
	if _, _, err := archived.LoadOrCreateKey(link); err == nil || !strings.Contains(err.Error(), "symbolic link") {
		t.Fatalf("daemon start with a symlinked key: %v", err)
	}
	out, code = runCmd(t, "archive", "key", "rotate", "--data-dir", dir, "--overlap", "-1h")
	if code != 2 {
		t.Fatalf("negative overlap: %d\n%s", code, out)
	}
}

// TestArchiveKeyRotateResume: a rotation interrupted after the
// announcement was logged and kept, before the key file was switched, is
// completed by running the command again: same new key, one rotation.
func TestArchiveKeyRotateResume(t *testing.T) {
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "archive.key")
	old, _, err := archived.LoadOrCreateKey(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	next, _ := keystore.Generate()
	if err := keystore.WriteFile(keyFile+".next", next); err != nil {
		t.Fatal(err)
	}
	a, err := archive.Open(t.Context(), archive.Options{Dir: dir, Key: old})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.RotateKey(t.Context(), next, time.Hour); err != nil {
		t.Fatal(err)
	}
	a.Close()
	if _, err := archive.Open(t.Context(), archive.Options{Dir: dir, Key: old}); err == nil {
		t.Fatal("the archive opened with the retired key")
	}
	out, code := runCmd(t, "archive", "key", "rotate", "--data-dir", dir)
	if code != 0 {
		t.Fatalf("resume: %d\n%s", code, out)
	}
	if k, err := keystore.LoadFile(keyFile); err != nil || !k.Equal(next) {
		t.Fatalf("key file after the resumed rotation: %v", err)
	}
	out, code = runCmd(t, "archive", "key", "show", "--data-dir", dir)
	if code != 0 || strings.Count(out, "rotation ") != 1 {
		t.Fatalf("show: %d\n%s", code, out)
	}
}
