//go:build cgo

package e2e

import (
	"crypto/ed25519"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edgeseal/edgeseal/archive"
	"github.com/edgeseal/edgeseal/archive/keystore/softhsmtest"
	"github.com/edgeseal/edgeseal/bundle/archivesig"
	"github.com/edgeseal/edgeseal/bundle/bundletest"
	"github.com/edgeseal/edgeseal/internal/e2etest"
)

// TestArchivePKCS11 moves the archive key into a SoftHSM2 token the way
// the runbook does: a key generated in the token (`archive key
// import-pkcs11 --generate`), a rotation to it (`archive key rotate
// --new-key pkcs11:...`), the config's key and pkcs11 section; then the
// daemon signs with the token and a device's publisher, configured with
// the old file key, delivers over MQTT: every receipt is signed by the
// token key and verifies, the outbox drains. The key commands run the
// binary; the daemon runs in the test's process (archived.Run), where the
// test reads the key it signs with.
func TestArchivePKCS11(t *testing.T) {
	tok := softhsmtest.New(t, "edgeseal")
	t.Setenv("EDGESEAL_TEST_PIN", tok.PIN)
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	fileKey, _, err := loadOrCreateArchiveKey(filepath.Join(data, "archive.key"))
	if err != nil {
		t.Fatal(err)
	}
	uri := "pkcs11:token=edgeseal;object=archive-2026"
	out, code := runCmd(t, "archive", "key", "import-pkcs11", "--data-dir", data, "--key", uri, "--generate",
		"--module", tok.Module, "--pin-env", "EDGESEAL_TEST_PIN")
	if code != 0 || !strings.Contains(out, "created in token edgeseal") {
		t.Fatalf("import-pkcs11 --generate: %d\n%s", code, out)
	}
	out, code = runCmd(t, "archive", "key", "rotate", "--data-dir", data, "--new-key", uri, "--overlap", "1h",
		"--module", tok.Module, "--pin-env", "EDGESEAL_TEST_PIN")
	if code != 0 || !strings.Contains(out, "set `key: "+uri) {
		t.Fatalf("rotate --new-key: %d\n%s", code, out)
	}
	if out, code := runCmd(t, "archive", "key", "import-pkcs11", "--data-dir", data, "--key", uri,
		"--module", tok.Module, "--pin-env", "EDGESEAL_TEST_PIN"); code == 0 || !strings.Contains(out, "already") {
		t.Fatalf("a second key under the label: %d\n%s", code, out)
	}

	yaml := fmt.Sprintf("data_dir: data\nkey: %q\npkcs11:\n  module: %s\n  pin_env: EDGESEAL_TEST_PIN\nmqtt:\n  embedded:\n    listen: 127.0.0.1:0\n", uri, tok.Module)
	cfg := e2etest.ArchiveConfig(t, dir, yaml)
	ar := e2etest.StartArchive(t, cfg)
	a, brk := ar.A, ar.B
	tokenID := a.KeyID()
	if tokenID == archivesig.ArchiveKeyID(fileKey.Public().(ed25519.PublicKey)) {
		t.Fatal("the daemon still signs with the file key")
	}

	c, err := bundletest.NewChain(t.Context(), nil, 3, bundletest.Options{Site: "site1", Device: "dev1"})
	if err != nil {
		t.Fatal(err)
	}
	enrollChain(t, a, c)
	ob := newOutbox(t)
	for i, b := range c.Bundles {
		raw, _ := b.Bytes()
		if err := ob.PutOutbox(t.Context(), fmt.Sprintf("b-%04d", i+1), raw); err != nil {
			t.Fatal(err)
		}
	}
	ka := e2etest.StartKeyAgent(t, brk.URL(), ob, t.TempDir(), fileKey.Public().(ed25519.PublicKey))
	ka.WaitDrained(t, 3)
	verifier := archivesig.NewArchiveKeys(archive.DefaultName, fileKey.Public().(ed25519.PublicKey))
	for i := range 3 {
		raw := ka.Receipt(fmt.Sprintf("b-%04d", i+1))
		if _, _, err := verifier.VerifyReceipt(raw, time.Now()); err != nil {
			t.Fatalf("receipt %d: %v", i+1, err)
		}
		env, _, _ := archivesig.ParseReceipt(raw)
		if env.Signatures[0].KeyID != tokenID {
			t.Fatalf("receipt %d signed by %s, want the token key %s", i+1, env.Signatures[0].KeyID, tokenID)
		}
	}
}

// TestArchiveRekeyPKCS11: `archive devices rekey` signs with the key the
// config names. With the archive key in a token (after a rotation to it,
// key_file still holding the old key) it opens the archive with the token
// key, not key_file's: the archive opens (no key mismatch) and the rekey
// gets as far as the device; with no key_file at all it creates none.
func TestArchiveRekeyPKCS11(t *testing.T) {
	tok := softhsmtest.New(t, "edgeseal")
	t.Setenv("EDGESEAL_TEST_PIN", tok.PIN)
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	keyFile := filepath.Join(data, "archive.key")
	if _, _, err := loadOrCreateArchiveKey(keyFile); err != nil {
		t.Fatal(err)
	}
	uri := "pkcs11:token=edgeseal;object=archive-rekey"
	if out, code := runCmd(t, "archive", "key", "import-pkcs11", "--data-dir", data, "--key", uri, "--generate",
		"--module", tok.Module, "--pin-env", "EDGESEAL_TEST_PIN"); code != 0 {
		t.Fatalf("import-pkcs11 --generate: %d\n%s", code, out)
	}
	if out, code := runCmd(t, "archive", "key", "rotate", "--data-dir", data, "--new-key", uri, "--overlap", "1h",
		"--module", tok.Module, "--pin-env", "EDGESEAL_TEST_PIN"); code != 0 {
		t.Fatalf("rotate --new-key: %d\n%s", code, out)
	}
	cfgFile := filepath.Join(dir, "archive.yaml")
	yaml := fmt.Sprintf("data_dir: data\nkey: %q\npkcs11:\n  module: %s\n  pin_env: EDGESEAL_TEST_PIN\n", uri, tok.Module)
	if err := os.WriteFile(cfgFile, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	out, code := runCmd(t, "archive", "devices", "rekey", "site1/dev1", "--key", "abc", "--by", "alice", "--config", cfgFile)
	if code == 0 || strings.Contains(out, "is not the archive's current key") || !strings.Contains(out, "not enrolled") {
		t.Fatalf("rekey with the key in a token: exit %d\n%s", code, out)
	}

	// A token key and no key file: nothing is created beside the config.
	data2 := filepath.Join(dir, "data2")
	if err := os.MkdirAll(data2, 0o700); err != nil {
		t.Fatal(err)
	}
	cfgFile2 := filepath.Join(dir, "archive2.yaml")
	yaml2 := fmt.Sprintf("data_dir: data2\nkey: %q\npkcs11:\n  module: %s\n  pin_env: EDGESEAL_TEST_PIN\n", uri, tok.Module)
	if err := os.WriteFile(cfgFile2, []byte(yaml2), 0o644); err != nil {
		t.Fatal(err)
	}
	out, code = runCmd(t, "archive", "devices", "rekey", "site1/dev1", "--key", "abc", "--by", "alice", "--config", cfgFile2)
	if code == 0 || !strings.Contains(out, "not enrolled") {
		t.Fatalf("rekey with the key in a token, no key file: exit %d\n%s", code, out)
	}
	if _, err := os.Stat(filepath.Join(data2, "archive.key")); !os.IsNotExist(err) {
		t.Fatalf("rekey created a key file beside the token key: %v", err)
	}
}
