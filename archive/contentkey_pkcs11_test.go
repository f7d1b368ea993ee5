//go:build cgo

package archive_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/edgeseal/edgeseal/archive"
	"github.com/edgeseal/edgeseal/archive/keystore"
	"github.com/edgeseal/edgeseal/archive/keystore/softhsmtest"
	"github.com/edgeseal/edgeseal/bundle/bundletest"
	"github.com/edgeseal/edgeseal/tpm/recovery"
)

// TestContentKeyWrappedInToken: with an AES wrap key in a SoftHSM2
// token, the content private keys are written wrapped (no plain key
// file, no key bytes in the file), bundles sealed to the first and the
// rotated key are accepted (trial decryption with the unwrapped keys),
// an escrow and a restore work from the wrapped keys, and after a
// reopen the archive opens them again with the token; without the
// token, or with another token key, it refuses to load them.
func TestContentKeyWrappedInToken(t *testing.T) {
	tok := softhsmtest.New(t, "edgeseal-content")
	cfg := func(obj string) keystore.PKCS11Config {
		return keystore.PKCS11Config{Module: tok.Module, URI: keystore.URI{Token: tok.Label, Object: obj}, PIN: tok.PIN}
	}
	wk, err := keystore.GeneratePKCS11WrapKey(cfg("content-wrap"))
	if err != nil {
		t.Fatal(err)
	}
	other, err := keystore.GeneratePKCS11WrapKey(cfg("other-wrap"))
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, dir: t.TempDir(), key: testKey, wrap: wk}
	e.open()
	t.Cleanup(func() {
		e.a.Close()
		other.Close()
		wk.Close()
	})
	k1 := e.contentKey()
	d := filepath.Join(e.dir, archive.ContentKeyDir)
	if _, err := os.Stat(filepath.Join(d, "1.key")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a plain key file beside the wrapped one: %v", err)
	}
	wrapped, err := os.ReadFile(filepath.Join(d, "1.key.wrapped"))
	if err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(filepath.Join(d, "1.key.wrapped")); fi.Mode().Perm() != 0o600 || bytes.Contains(wrapped, []byte("CONTENT PRIVATE KEY-----\n")) && !bytes.Contains(wrapped, []byte("WRAPPED")) {
		t.Fatalf("wrapped key file %v:\n%s", fi.Mode(), wrapped)
	}
	c := newChain(t, 2, bundletest.Options{ContentKey: k1})
	e.approve(c)
	e.accept(c, c.Bundles[0])
	k2 := e.contentKey() // rotation, wrapped too
	if _, err := os.Stat(filepath.Join(d, "2.key.wrapped")); err != nil {
		t.Fatal(err)
	}
	c2 := newChain(t, 1, bundletest.Options{Site: "site2", Device: "dev2", ContentKey: k2})
	e.approve(c2)
	e.accept(c2, c2.Bundles[0])
	rec, _ := recovery.GenerateKey()
	p, err := e.a.EscrowContentKey(t.Context(), 1, rec.Public())
	if err != nil {
		t.Fatal(err)
	}
	esc, _ := os.ReadFile(p)

	// Reopened with the token: the old key still opens its payloads.
	e.a.Close()
	e.open()
	e.accept(c, c.Bundles[1])

	// Without the token, or with another token key: refused by name.
	e.a.Close()
	e.wrap = nil
	e.open()
	if _, err := e.a.ContentKeyAnnouncement(); !errors.Is(err, archive.ErrContentKeyWrapped) {
		t.Fatalf("without the wrap key: %v", err)
	}
	e.a.Close()
	e.wrap = other
	e.open()
	if _, err := e.a.ContentKeyAnnouncement(); !errors.Is(err, keystore.ErrUnwrap) {
		t.Fatalf("with another wrap key: %v", err)
	}

	// A restore into an archive with the wrap key writes it wrapped.
	e2 := &env{t: t, dir: t.TempDir(), key: testKey, wrap: wk}
	e2.open()
	defer e2.a.Close()
	if id, err := e2.a.RestoreContentKey(t.Context(), 1, esc, rec); err != nil || id != k1.ID {
		t.Fatalf("restore: %s %v", id, err)
	}
	if _, err := os.Stat(filepath.Join(e2.dir, archive.ContentKeyDir, "1.key.wrapped")); err != nil {
		t.Fatal(err)
	}
}
