//go:build !cgo

package keystore_test

import (
	"errors"
	"testing"

	"github.com/edgeseal/edgeseal/archive/keystore"
)

// TestNoPKCS11: a build without cgo refuses token keys, signing and
// wrap keys alike, with ErrNoPKCS11.
func TestNoPKCS11(t *testing.T) {
	cfg := keystore.PKCS11Config{Module: "/usr/lib/softhsm/libsofthsm2.so", URI: keystore.URI{Token: "t", Object: "o"}}
	_, err := keystore.OpenPKCS11(cfg)
	if !errors.Is(err, keystore.ErrNoPKCS11) {
		t.Fatalf("err = %v, want ErrNoPKCS11", err)
	}
	if _, err := keystore.OpenPKCS11WrapKey(cfg); !errors.Is(err, keystore.ErrNoPKCS11) {
		t.Fatalf("wrap key: err = %v, want ErrNoPKCS11", err)
	}
	if _, err := keystore.GeneratePKCS11WrapKey(cfg); !errors.Is(err, keystore.ErrNoPKCS11) {
		t.Fatalf("generate wrap key: err = %v, want ErrNoPKCS11", err)
	}
}
