package tpm

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/go-tpm/tpm2"

	"github.com/edgeseal/edgeseal/tpm/attest"
)

// generatorKey is the P-256 generator as a public key (a valid point).
func generatorKey() *ecdsa.PublicKey {
	raw := append([]byte{4}, hexBytes("6b17d1f2e12c4247f8bce6e563a440f277037d812deb33a0f4a13945d898c296")...)
	raw = append(raw, hexBytes("4fe342e2fe1a7f9b8ee7eb4a7c0f9e162bce33576b315ececbb6406837bf51f5")...)
	k, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), raw)
	if err != nil {
		panic(err)
	}
	return k
}

// validKeyFileV2 is validKeyFile bound to a PCR-policy key.
func validKeyFileV2(t testing.TB, kind string) []byte {
	t.Helper()
	var f keyFile
	if err := json.Unmarshal(validKeyFile(t, kind), &f); err != nil {
		t.Fatal(err)
	}
	area, err := attest.PolicyKeyPublic(generatorKey())
	if err != nil {
		t.Fatal(err)
	}
	ref := []byte("edgeseal test policy ref")
	pub, err := tpm2.Unmarshal[tpm2.TPMTPublic](f.Public)
	if err != nil {
		t.Fatal(err)
	}
	pub.AuthPolicy = tpm2.TPM2BDigest{Buffer: attest.PolicyAuthorizeDigest(attest.Name(area), ref)}
	f.V, f.Public, f.PolicyKey, f.PolicyRef = 2, tpm2.Marshal(pub), area, ref
	b, err := json.Marshal(&f)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParseKeyFileV2(t *testing.T) {
	for _, kind := range []string{keyKindSigning, keyKindData} {
		good := validKeyFileV2(t, kind)
		k, err := parseKeyFile("f", kind, good)
		if err != nil || !k.authorized() || !k.pkey.Equal(generatorKey()) {
			t.Fatalf("%s: valid v2 key file: %v", kind, err)
		}
		mutate := func(fn func(f *keyFile)) []byte {
			var f keyFile
			_ = json.Unmarshal(good, &f)
			fn(&f)
			b, _ := json.Marshal(&f)
			return b
		}
		for name, c := range map[string]struct {
			b    []byte
			want string
		}{
			"other ref":      {mutate(func(f *keyFile) { f.PolicyRef = []byte("another device") }), "not PolicyAuthorize"},
			"no ref":         {mutate(func(f *keyFile) { f.PolicyRef = nil }), "policyRef"},
			"long ref":       {mutate(func(f *keyFile) { f.PolicyRef = make([]byte, 33) }), "policyRef"},
			"v1 with key":    {mutate(func(f *keyFile) { f.V = 1 }), "version 1 key with"},
			"bad policy key": {mutate(func(f *keyFile) { f.PolicyKey = f.PolicyKey[:10] }), "pcr policy key"},
			"other template": {mutate(func(f *keyFile) {
				p, _ := tpm2.Unmarshal[tpm2.TPMTPublic](f.PolicyKey)
				p.ObjectAttributes.UserWithAuth = true
				f.PolicyKey = tpm2.Marshal(p)
			}), "template"},
		} {
			if _, err := parseKeyFile("f", kind, c.b); err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("%s %s: %v, want an error with %q", kind, name, err, c.want)
			}
		}
	}
}
