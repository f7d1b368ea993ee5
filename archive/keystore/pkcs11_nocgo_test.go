//go:build !cgo

package keystore_test

import (
	"errors"
	"testing"

	"github.com/edgeseal/edgeseal/archive/keystore"
)

// TestNoPKCS11: a build without cgo refuses token keys with ErrNoPKCS11.
func TestNoPKCS11(t *testing.T) {
	_, err := keystore.OpenPKCS11(keystore.PKCS11Config{Module: "/usr/lib/softhsm/libsofthsm2.so", URI: keystore.URI{Token: "t", Object: "o"}})
	if !errors.Is(err, keystore.ErrNoPKCS11) {
		t.Fatalf("err = %v, want ErrNoPKCS11", err)
	}
}
