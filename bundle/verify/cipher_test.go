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

func cipherChain(t *testing.T, v1 bool) (*bundletest.Chain, *payloadcipher.PrivateKey) {
	t.Helper()
	k, err := payloadcipher.DeriveKey([]byte("verify test content key"))
	if err != nil {
		t.Fatal(err)
	}
	return bundletest.MustChain(t, 2, bundletest.Options{ContentKey: k.Public(), CipherV1: v1, CipherWindow: 3}), k
}

// cipherVersions runs f for chains sealed with payload cipher version 2
// (windows of three payloads) and version 1.
func cipherVersions(t *testing.T, f func(t *testing.T, v1 bool)) {
	for _, v1 := range []bool{false, true} {
		t.Run(map[bool]string{false: "v2", true: "v1"}[v1], func(t *testing.T) { f(t, v1) })
	}
}

// TestVerifyEncrypted: a chain whose payloads are all encrypted verifies
// completely with no private key, carries .hpke files only and no
// payload plaintext, and every ciphertext opens to the payload its
// record names (custody.DecryptPayload), for payload cipher versions 2
// and 1; version 2 ciphertexts share their window's enc, three at most.
func TestVerifyEncrypted(t *testing.T) { cipherVersions(t, verifyEncrypted) }

func verifyEncrypted(t *testing.T, v1 bool) {
	c, k := cipherChain(t, v1)
	opened := 0
	windows := map[string]int{}
	o := payloadcipher.NewOpener(0)
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
			if want := map[bool]int{false: 2, true: 1}[v1]; e.PayloadCipher.Version() != want {
				t.Fatalf("export %s: payload cipher version %d, want %d", e.ExportID, e.PayloadCipher.Version(), want)
			}
			windows[string(file[:payloadcipher.EncSize])]++
			pt, err := custody.DecryptPayload(rec, k, file, o)
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
	for _, n := range windows {
		if v1 && n != 1 || n > 3 {
			t.Fatalf("%d payloads share one enc", n)
		}
	}
	if !v1 && len(windows) >= opened {
		t.Fatalf("%d payloads in %d windows", opened, len(windows))
	}
}

// TestVerifyCipherCases: each attack on encrypted payloads is refused by
// its named check, by a verifier holding no private key, for payload
// cipher versions 2 and 1.
func TestVerifyCipherCases(t *testing.T) { cipherVersions(t, verifyCipherCases) }

func verifyCipherCases(t *testing.T, v1 bool) {
	c, _ := cipherChain(t, v1)
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
