package keystore_test

import (
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/edgeseal/edgeseal/archive/keystore"
)

func writeKey(t *testing.T, mode os.FileMode) (string, ed25519.PrivateKey) {
	t.Helper()
	k, err := keystore.Generate()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "archive.key")
	if err := keystore.WriteFile(path, k); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
	return path, k
}

func TestLoadFile(t *testing.T) {
	path, k := writeKey(t, 0o600)
	got, err := keystore.LoadFile(path)
	if err != nil || !got.Equal(k) {
		t.Fatalf("0600 key file: %v", err)
	}
	for _, mode := range []os.FileMode{0o640, 0o604, 0o660, 0o610} {
		os.Chmod(path, mode)
		_, err := keystore.LoadFile(path)
		var fe *keystore.FileError
		if !errors.As(err, &fe) || !strings.Contains(err.Error(), "group or others") {
			t.Fatalf("mode %o: err = %v, want a *FileError about group or others", mode, err)
		}
	}
	os.Chmod(path, 0o600)
	link := filepath.Join(t.TempDir(), "link.key")
	if err := os.Symlink(path, link); err != nil {
		t.Fatal(err)
	}
	_, err = keystore.LoadFile(link)
	var fe *keystore.FileError
	if !errors.As(err, &fe) || !strings.Contains(err.Error(), "symbolic link") {
		t.Fatalf("symlinked key: err = %v, want a *FileError naming the link", err)
	}
	bad := filepath.Join(t.TempDir(), "bad.key")
	os.WriteFile(bad, []byte("not a key"), 0o600)
	if _, err := keystore.LoadFile(bad); err == nil || !strings.Contains(err.Error(), "PEM PRIVATE KEY") {
		t.Fatalf("garbage key: %v", err)
	}
}

func TestReadPIN(t *testing.T) {
	dir := t.TempDir()
	pf := filepath.Join(dir, "pin")
	os.WriteFile(pf, []byte("1234\n"), 0o600)
	env := func(name string) string {
		if name == "PIN_VAR" {
			return "5678"
		}
		return ""
	}
	if pin, err := keystore.ReadPIN(pf, "", env); err != nil || pin != "1234" {
		t.Fatalf("pin file: %q %v", pin, err)
	}
	if pin, err := keystore.ReadPIN("", "PIN_VAR", env); err != nil || pin != "5678" {
		t.Fatalf("pin env: %q %v", pin, err)
	}
	if _, err := keystore.ReadPIN("", "UNSET", env); err == nil || !strings.Contains(err.Error(), "UNSET") {
		t.Fatalf("unset env: %v", err)
	}
	if _, err := keystore.ReadPIN(pf, "PIN_VAR", env); err == nil {
		t.Fatal("both a file and a variable accepted")
	}
	if _, err := keystore.ReadPIN("", "", env); err == nil {
		t.Fatal("no PIN source accepted")
	}
	os.Chmod(pf, 0o644)
	var fe *keystore.FileError
	if _, err := keystore.ReadPIN(pf, "", env); !errors.As(err, &fe) {
		t.Fatalf("world-readable PIN file: %v", err)
	}
}

func TestParseURI(t *testing.T) {
	u, err := keystore.ParseURI("pkcs11:object=archive%20key;token=edge;type=private")
	if err != nil || u.Token != "edge" || u.Object != "archive key" {
		t.Fatalf("%+v %v", u, err)
	}
	if back, err := keystore.ParseURI(u.String()); err != nil || back != u {
		t.Fatalf("round trip %q: %+v %v", u.String(), back, err)
	}
	for _, bad := range []string{
		"pkcs11:token=a", "pkcs11:object=b", "file:/x", "pkcs11:token=a;object=b?pin-value=1234",
		"pkcs11:token=a;object=b;serial=1", "pkcs11:token=a;object=b;type=public", "pkcs11:token", "pkcs11:token=%zz;object=b",
	} {
		if _, err := keystore.ParseURI(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func signVerify(t *testing.T, k crypto.Signer) {
	t.Helper()
	msg := []byte("receipt to sign")
	sig, err := k.Sign(rand.Reader, msg, crypto.Hash(0))
	if err != nil {
		t.Fatal(err)
	}
	if !ed25519.Verify(k.Public().(ed25519.PublicKey), msg, sig) {
		t.Fatal("token signature does not verify")
	}
}
