package trustfile_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edgeseal/edgeseal/bundle/trustfile"
	"github.com/edgeseal/edgeseal/bundle/wire"
	"github.com/edgeseal/edgeseal/tpm/attest"
)

var updatePCRAuth = flag.Bool("update-pcrauth", false, "rewrite testdata/pcrauth")

const pcrAuthDir = "testdata/pcrauth"

// pcrAuthVector is one case of testdata/pcrauth/cases.json: a statement
// file, the device and key it is checked against, and the field
// (PCRAuthError.Field) that is wrong, or "" when it is accepted.
type pcrAuthVector struct {
	File   string `json:"file"`
	Device string `json:"device"`
	Key    string `json:"key"`
	Field  string `json:"field"`
	Stage  string `json:"stage"` // "parse" or "verify" for a refused one
}

func vectorValues() ([]int, map[int][]byte) {
	v := map[int][]byte{}
	for _, p := range []int{0, 2, 4, 7} {
		b := make([]byte, 32)
		for i := range b {
			b[i] = byte(p*16 + i)
		}
		v[p] = b
	}
	return []int{0, 2, 4, 7}, v
}

func readKey(t testing.TB, name string) *ecdsa.PrivateKey {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(pcrAuthDir, name))
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	k, err := x509.ParseECPrivateKey(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func writeKey(t testing.TB, name string) *ecdsa.PrivateKey {
	t.Helper()
	if _, err := os.Stat(filepath.Join(pcrAuthDir, name)); err == nil {
		return readKey(t, name) // keep the keys spec.json was computed for
	}
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalECPrivateKey(k)
	if err := os.WriteFile(filepath.Join(pcrAuthDir, name), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	return k
}

// rewrite decodes raw, applies f to the generic JSON and re-encodes it.
func rewrite(t testing.TB, raw []byte, f func(m map[string]any)) []byte {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	f(m)
	out, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// generatePCRAuthVectors writes the statements of cases.json: a valid
// one and the golden tampered ones.
func generatePCRAuthVectors(t *testing.T) {
	key, other := writeKey(t, "policy-key.pem"), writeKey(t, "other-key.pem")
	pcrs, values := vectorValues()
	at := time.Date(2026, 12, 7, 3, 0, 0, 0, time.UTC)
	sign := func(k *ecdsa.PrivateKey, dev string, vals map[int][]byte) []byte {
		a, err := trustfile.SignPCRAuthorization(k, dev, pcrs, vals, at)
		if err != nil {
			t.Fatal(err)
		}
		raw, err := a.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		return raw
	}
	valid := sign(key, "site-a/dev-1", values)
	moved := map[int][]byte{}
	for p, v := range values {
		moved[p] = v
	}
	moved[0] = make([]byte, 32)
	movedSigned := sign(key, "site-a/dev-1", moved)
	files := map[string][]byte{
		"valid.json":        valid,
		"other-device.json": sign(key, "site-a/dev-2", values),
		"wrong-key.json":    sign(other, "site-a/dev-1", values),
		// The values changed after signing, approvedPolicy left as signed.
		"other-values.json": rewrite(t, valid, func(m map[string]any) {
			m["pcrValues"].(map[string]any)["0"] = hex.EncodeToString(make([]byte, 32))
		}),
		// The values and approvedPolicy changed after signing: only the
		// signature catches it.
		"other-values-recomputed.json": rewrite(t, valid, func(m map[string]any) {
			var mv map[string]any
			_ = json.Unmarshal(movedSigned, &mv)
			m["pcrValues"], m["approvedPolicy"] = mv["pcrValues"], mv["approvedPolicy"]
		}),
		// Signed by another key, claiming the device's key id.
		"wrong-key-claimed-id.json": rewrite(t, sign(other, "site-a/dev-1", values), func(m map[string]any) {
			var mv map[string]any
			_ = json.Unmarshal(valid, &mv)
			m["policyKeyId"] = mv["policyKeyId"]
		}),
		"flipped-signature.json": rewrite(t, valid, func(m map[string]any) {
			var a trustfile.PCRAuthorization
			_ = json.Unmarshal(valid, &a)
			a.Signature[len(a.Signature)-1] ^= 1
			b, _ := json.Marshal(a.Signature)
			var s string
			_ = json.Unmarshal(b, &s)
			m["signature"] = s
		}),
		"other-policy-ref.json": rewrite(t, valid, func(m map[string]any) {
			m["policyRef"] = hex.EncodeToString(trustfile.PCRPolicyRef("site-a/dev-2"))
		}),
		// Signed later than it was: only the statement signature covers the time.
		"changed-time.json":           rewrite(t, valid, func(m map[string]any) { m["time"] = "2027-01-01T00:00:00.000000Z" }),
		"no-statement-signature.json": rewrite(t, valid, func(m map[string]any) { delete(m, "statementSignature") }),
		"unknown-field.json":          rewrite(t, valid, func(m map[string]any) { m["note"] = "x" }),
		"version-2.json":              rewrite(t, valid, func(m map[string]any) { m["version"] = 2 }),
		"missing-value.json":          rewrite(t, valid, func(m map[string]any) { delete(m["pcrValues"].(map[string]any), "7") }),
	}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(pcrAuthDir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestPCRAuthVectors(t *testing.T) {
	if *updatePCRAuth {
		generatePCRAuthVectors(t)
	}
	raw, err := os.ReadFile(filepath.Join(pcrAuthDir, "cases.json"))
	if err != nil {
		t.Fatal(err)
	}
	var cases []pcrAuthVector
	if err := json.Unmarshal(raw, &cases); err != nil {
		t.Fatal(err)
	}
	if len(cases) < 10 {
		t.Fatalf("%d cases", len(cases))
	}
	for _, c := range cases {
		t.Run(strings.TrimSuffix(c.File, ".json"), func(t *testing.T) {
			b, err := os.ReadFile(filepath.Join(pcrAuthDir, c.File))
			if err != nil {
				t.Fatal(err)
			}
			key := readKey(t, c.Key)
			a, err := trustfile.ParsePCRAuthorization(b)
			if err == nil {
				err = a.Verify(&key.PublicKey, c.Device)
				if err == nil && c.Stage == "parse" {
					t.Fatalf("parsed; want refused at parse on %s", c.Field)
				}
			} else if c.Stage != "parse" {
				t.Fatalf("parse: %v; want stage %q", err, c.Stage)
			}
			if c.Field == "" {
				if err != nil {
					t.Fatalf("valid statement refused: %v", err)
				}
				return
			}
			var pe *trustfile.PCRAuthError
			if !errors.As(err, &pe) || pe.Field != c.Field {
				t.Fatalf("got %v, want a *PCRAuthError on %q", err, c.Field)
			}
		})
	}
}

// TestPCRAuthSpecVector pins the digests of valid.json against values
// computed independently (Python hashlib; see testdata/pcrauth/README.md).
func TestPCRAuthSpecVector(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(pcrAuthDir, "spec.json"))
	if err != nil {
		t.Fatal(err)
	}
	var spec struct {
		Device, PolicyRef, ApprovedPolicy, PolicyKeyPublic, PolicyKeyName, AuthPolicy, AuthorizationDigest string
	}
	if err := json.Unmarshal(raw, &spec); err != nil {
		t.Fatal(err)
	}
	key := readKey(t, "policy-key.pem")
	pcrs, values := vectorValues()
	approved, _ := attest.PolicyPCRDigest(pcrs, values)
	area, err := attest.PolicyKeyPublic(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	auth, err := trustfile.PCRAuthorizationDigest(&key.PublicKey, spec.Device)
	if err != nil {
		t.Fatal(err)
	}
	ref := trustfile.PCRPolicyRef(spec.Device)
	for _, c := range []struct{ name, got, want string }{
		{"policyRef", hex.EncodeToString(ref), spec.PolicyRef},
		{"approvedPolicy", hex.EncodeToString(approved), spec.ApprovedPolicy},
		{"policy key TPMT_PUBLIC", hex.EncodeToString(area), spec.PolicyKeyPublic},
		{"policy key Name", hex.EncodeToString(attest.Name(area)), spec.PolicyKeyName},
		{"authPolicy", hex.EncodeToString(auth), spec.AuthPolicy},
		{"aHash", hex.EncodeToString(attest.AuthorizationDigest(approved, ref)), spec.AuthorizationDigest},
	} {
		if c.got != c.want {
			t.Errorf("%s: %s, want %s", c.name, c.got, c.want)
		}
	}
	b, _ := os.ReadFile(filepath.Join(pcrAuthDir, "valid.json"))
	a, err := trustfile.ParsePCRAuthorization(b)
	if err != nil {
		t.Fatal(err)
	}
	if a.ApprovedPolicy != spec.ApprovedPolicy || a.PolicyRef != spec.PolicyRef {
		t.Fatal("valid.json does not carry the spec digests")
	}
	if again, _ := a.Marshal(); string(again) != string(b) {
		t.Fatalf("valid.json is not the canonical encoding:\n%s\n%s", again, b)
	}
}

func TestPCRAuthOversize(t *testing.T) {
	b := make([]byte, trustfile.MaxPCRAuthSize+1)
	if _, err := trustfile.ParsePCRAuthorization(b); !errors.Is(err, wire.ErrTooLarge) {
		t.Fatalf("oversize: %v", err)
	}
}
