package verify_test

import (
	"bytes"
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/edgeseal/edgeseal/bundle"
	"github.com/edgeseal/edgeseal/bundle/bundletest"
	"github.com/edgeseal/edgeseal/bundle/custody"
	"github.com/edgeseal/edgeseal/bundle/payloadcipher"
	"github.com/edgeseal/edgeseal/bundle/verify"
)

func cipherChain(t *testing.T) (*bundletest.Chain, *payloadcipher.PrivateKey) {
	t.Helper()
	k, err := payloadcipher.DeriveKey([]byte("verify test content key"))
	if err != nil {
		t.Fatal(err)
	}
	return bundletest.MustChain(t, 2, bundletest.Options{ContentKey: k.Public()}), k
}

// TestVerifyEncrypted: a chain whose payloads are all encrypted verifies
// completely with no private key, carries .hpke files only and no
// payload plaintext, and every ciphertext opens to the payload its
// record names (custody.DecryptPayload).
func TestVerifyEncrypted(t *testing.T) {
	c, k := cipherChain(t)
	opened := 0
	for i, b := range c.Bundles {
		var prev *verify.State
		if i > 0 {
			prev = c.States[i-1]
		}
		r := verify.Verify(b, c.Trust, prev)
		if !r.OK() {
			t.Fatalf("bundle %d:\n%s", i, r)
		}
		raw, err := b.Records()
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range b.Names() {
			if strings.HasPrefix(n, bundle.PayloadDir) && !strings.HasSuffix(n, bundle.EncryptedPayload) {
				t.Fatalf("bundle %d carries a plaintext payload %s", i, n)
			}
		}
		for _, line := range raw {
			rec, err := custody.ParseRecord(line)
			if err != nil || rec.Type != custody.TypeExport {
				continue
			}
			e, _ := rec.ExportBody()
			if e.PayloadCipher == nil {
				t.Fatalf("bundle %d: export %s not encrypted", i, e.ExportID)
			}
			d := strings.TrimPrefix(e.PayloadCipher.Digest, "sha256:")
			file, ok := b.Files[bundle.PayloadDir+d+bundle.EncryptedPayload]
			if !ok {
				continue // purged in this bundle
			}
			pt, err := custody.DecryptPayload(rec, k, file, nil)
			if err != nil {
				t.Fatalf("bundle %d: export %s: %v", i, e.ExportID, err)
			}
			prefix := []byte("export ")
			if !bytes.HasPrefix(pt, prefix) {
				t.Fatalf("plaintext %q", pt[:20])
			}
			for _, f := range b.Files {
				if bytes.Contains(f, pt[:24]) {
					t.Fatalf("bundle %d holds the plaintext of %s", i, e.ExportID)
				}
			}
			opened++
		}
	}
	if opened < 4 {
		t.Fatalf("only %d payloads opened", opened)
	}
}

// TestVerifyCipherCases: each attack on encrypted payloads is refused by
// its named check, by a verifier holding no private key.
func TestVerifyCipherCases(t *testing.T) {
	c, _ := cipherChain(t)
	for _, cs := range bundletest.CipherCases {
		t.Run(cs.Kind, func(t *testing.T) {
			b, prev, err := c.TamperCipher(context.Background(), cs)
			if err != nil {
				t.Fatal(err)
			}
			r := verify.Verify(b, c.Trust, prev)
			if r.OK() {
				t.Fatalf("%s verified", cs.Desc)
			}
			if !slices.Contains(r.Failed(), cs.Want) {
				t.Fatalf("%s: failed %v, want %s\n%s", cs.Desc, r.Failed(), cs.Want, r)
			}
			t.Logf("%s: failed %v", cs.Kind, r.Failed())
		})
	}
}
