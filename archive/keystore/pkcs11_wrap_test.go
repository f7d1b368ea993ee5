//go:build cgo

package keystore_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/edgeseal/edgeseal/archive/keystore"
	"github.com/edgeseal/edgeseal/archive/keystore/softhsmtest"
)

// TestPKCS11WrapKey creates an AES-256 wrap key in a SoftHSM2 token,
// wraps a secret through the token and unwraps it after a reopen; the
// wrapped bytes do not hold the secret, each wrap has a fresh IV, and
// another binding, a changed or truncated value, another token key and
// a second key under the label are refused, as is a missing key.
func TestPKCS11WrapKey(t *testing.T) {
	tok := softhsmtest.New(t, "edgeseal-wrap")
	cfg := keystore.PKCS11Config{Module: tok.Module, URI: keystore.URI{Token: tok.Label, Object: "content-wrap"}, PIN: tok.PIN}
	if _, err := keystore.OpenPKCS11WrapKey(cfg); err == nil {
		t.Fatal("opened a wrap key the token does not hold")
	}
	k, err := keystore.GeneratePKCS11WrapKey(cfg)
	if err != nil {
		t.Fatal(err)
	}
	secret := bytes.Repeat([]byte{0x5a, 0xa5}, 16)
	aad := []byte("edgeseal content key 1")
	w1, err := k.Wrap(secret, aad)
	if err != nil {
		t.Fatal(err)
	}
	w2, err := k.Wrap(secret, aad)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(w1, secret) || bytes.Equal(w1[:keystore.WrapIVSize], w2[:keystore.WrapIVSize]) || len(w1) != keystore.WrapIVSize+len(secret)+16 {
		t.Fatalf("wrapped %x, %x", w1, w2)
	}
	if _, err := keystore.GeneratePKCS11WrapKey(cfg); err == nil {
		t.Fatal("a second wrap key under the label")
	}
	k.Close()
	if _, err := k.Wrap(secret, []byte("aad")); err == nil || !strings.Contains(err.Error(), "wrap key closed") {
		t.Fatalf("wrap with a closed key: %v", err)
	}
	if _, err := k.Unwrap(w1, []byte("aad")); err == nil || !strings.Contains(err.Error(), "wrap key closed") {
		t.Fatalf("unwrap with a closed key: %v", err)
	}

	k, err = keystore.OpenPKCS11WrapKey(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	for _, w := range [][]byte{w1, w2} {
		if got, err := k.Unwrap(w, aad); err != nil || !bytes.Equal(got, secret) {
			t.Fatalf("unwrap: %x %v", got, err)
		}
	}
	changed := bytes.Clone(w1)
	changed[len(changed)-1] ^= 1
	for name, c := range map[string]struct{ w, aad []byte }{
		"another binding": {w1, []byte("edgeseal content key 2")},
		"changed":         {changed, aad},
		"truncated":       {w1[:keystore.WrapIVSize+8], aad},
	} {
		if _, err := k.Unwrap(c.w, c.aad); !errors.Is(err, keystore.ErrUnwrap) {
			t.Errorf("%s: %v, want ErrUnwrap", name, err)
		}
	}
	other, err := keystore.GeneratePKCS11WrapKey(keystore.PKCS11Config{Module: tok.Module, URI: keystore.URI{Token: tok.Label, Object: "other-wrap"}, PIN: tok.PIN})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if _, err := other.Unwrap(w1, aad); !errors.Is(err, keystore.ErrUnwrap) {
		t.Fatalf("another token key: %v", err)
	}
}
