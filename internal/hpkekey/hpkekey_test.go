package hpkekey_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/edgeseal/edgeseal/internal/hpkekey"
)

type testErr struct{ what, reason string }

func (e *testErr) Error() string { return "test: " + e.what + ": " + e.reason }

var testFormat = hpkekey.Format{Name: "test", PrivateType: "TEST PRIVATE KEY", PublicType: "TEST PUBLIC KEY",
	Err: func(what, reason string, err error) error { return &testErr{what, reason} }}

type testKey struct{}

func (testKey) Format() *hpkekey.Format { return &testFormat }

// TestKeyFiles: a key pair of a flavour round-trips through its PEM files
// and serialized forms with its id; a file of another PEM type or with a
// changed Key-Id is refused with the flavour's error.
func TestKeyFiles(t *testing.T) {
	k, err := hpkekey.Derive[testKey](bytes.Repeat([]byte{7}, 32))
	if err != nil {
		t.Fatal(err)
	}
	pub := k.Public()
	if k.ID != pub.ID || k.ID != hpkekey.KeyID(pub.Bytes()) || !hpkekey.ValidKeyID(k.ID) {
		t.Fatalf("ids %s %s", k.ID, pub.ID)
	}
	privPEM, err := k.MarshalPEM()
	if err != nil || !strings.HasPrefix(string(privPEM), "-----BEGIN TEST PRIVATE KEY-----\n") {
		t.Fatalf("private PEM %s %v", privPEM, err)
	}
	k2, err := hpkekey.ParsePrivateKey[testKey](privPEM)
	if err != nil || k2.ID != k.ID {
		t.Fatalf("parse private: %v", err)
	}
	p2, err := hpkekey.ParsePublicKey[testKey](pub.MarshalPEM())
	if err != nil || p2.ID != k.ID || !bytes.Equal(p2.Bytes(), pub.Bytes()) {
		t.Fatalf("parse public: %v", err)
	}
	seed, err := k.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	if k3, err := hpkekey.NewPrivateKey[testKey](seed); err != nil || k3.ID != k.ID {
		t.Fatalf("new private: %v", err)
	}
	if p3, err := hpkekey.NewPublicKey[testKey](pub.Bytes()); err != nil || p3.ID != k.ID {
		t.Fatalf("new public: %v", err)
	}
	var te *testErr
	if _, err := hpkekey.ParsePublicKey[testKey](privPEM); !errors.As(err, &te) || te.what != "public key" {
		t.Fatalf("private file read as public: %v", err)
	}
	other, err := hpkekey.Generate[testKey]()
	if err != nil {
		t.Fatal(err)
	}
	swapped := strings.Replace(string(pub.MarshalPEM()), k.ID, other.ID, 1)
	if _, err := hpkekey.ParsePublicKey[testKey]([]byte(swapped)); !errors.As(err, &te) || !strings.Contains(te.reason, "Key-Id") {
		t.Fatalf("changed Key-Id: %v", err)
	}
	if _, err := hpkekey.NewPublicKey[testKey]([]byte("short")); !errors.As(err, &te) {
		t.Fatalf("short public key: %v", err)
	}
}

func TestValidKeyID(t *testing.T) {
	hex := strings.Repeat("0123456789abcdef", 4)
	for s, want := range map[string]bool{
		"sha256:" + hex:                  true,
		"sha256:" + strings.ToUpper(hex): false,
		"sha256:" + hex[1:]:              false,
		"sha256:" + hex + "0":            false,
		"sha512:" + hex:                  false,
		hex:                              false,
		"sha256:" + hex[:63] + "g":       false,
		"":                               false,
	} {
		if got := hpkekey.ValidKeyID(s); got != want {
			t.Errorf("ValidKeyID(%q) = %v", s, got)
		}
	}
}
