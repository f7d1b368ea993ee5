//go:build cgo

package keystore_test

import (
	"crypto"
	"crypto/ed25519"
	"errors"
	"strings"
	"testing"

	"github.com/edgeseal/edgeseal/archive/keystore"
	"github.com/edgeseal/edgeseal/archive/keystore/softhsmtest"
)

// TestPKCS11 creates Ed25519 keys in a SoftHSM2 token (generated in it,
// and imported from a file key), signs with them through the token and
// verifies; a wrong PIN, an unknown token or object and a second key
// under a label are refused.
func TestPKCS11(t *testing.T) {
	tok := softhsmtest.New(t, "edgeseal-test")
	cfg := keystore.PKCS11Config{Module: tok.Module, URI: keystore.URI{Token: tok.Label, Object: "archive-gen"}, PIN: tok.PIN}

	gen, err := keystore.GeneratePKCS11(cfg)
	if err != nil {
		t.Fatal(err)
	}
	signVerify(t, gen)
	gen.Close()

	again, err := keystore.OpenPKCS11(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !again.Public().(ed25519.PublicKey).Equal(gen.Public()) {
		t.Fatal("reopened key has another public key")
	}
	signVerify(t, again)
	again.Close()
	if _, err := again.Sign(nil, []byte("m"), crypto.Hash(0)); err == nil || !strings.Contains(err.Error(), "key closed") {
		t.Fatalf("sign with a closed key: %v", err)
	}
	if err := again.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}

	fileKey, err := keystore.Generate()
	if err != nil {
		t.Fatal(err)
	}
	icfg := cfg
	icfg.URI.Object = "archive-imported"
	imp, err := keystore.ImportPKCS11(icfg, fileKey)
	if err != nil {
		t.Fatal(err)
	}
	if !fileKey.Public().(ed25519.PublicKey).Equal(imp.Public()) {
		t.Fatal("imported key has another public key")
	}
	signVerify(t, imp)
	imp.Close()

	var pe *keystore.PKCS11Error
	if _, err := keystore.ImportPKCS11(icfg, fileKey); !errors.As(err, &pe) || !strings.Contains(err.Error(), "already") {
		t.Fatalf("second key under a label: %v", err)
	}
	wrong := cfg
	wrong.PIN = "0000"
	if _, err := keystore.OpenPKCS11(wrong); !errors.As(err, &pe) || !strings.Contains(err.Error(), "login") {
		t.Fatalf("wrong PIN: %v", err)
	}
	noTok := cfg
	noTok.URI.Token = "other"
	if _, err := keystore.OpenPKCS11(noTok); !errors.As(err, &pe) || !strings.Contains(err.Error(), "no token") {
		t.Fatalf("unknown token: %v", err)
	}
	noObj := cfg
	noObj.URI.Object = "missing"
	if _, err := keystore.OpenPKCS11(noObj); !errors.As(err, &pe) || !strings.Contains(err.Error(), "0 private keys") {
		t.Fatalf("unknown object: %v", err)
	}
	noMod := cfg
	noMod.Module = "/nonexistent/libpkcs11.so"
	if _, err := keystore.OpenPKCS11(noMod); !errors.As(err, &pe) {
		t.Fatalf("missing module: %v", err)
	}
}
