package signed

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/edgeseal/edgeseal/bundle/dsse"
	"github.com/edgeseal/edgeseal/bundle/verify"
)

// testKeys makes n admin keys in dir and the admin set of them.
func testKeys(t testing.TB, dir string, threshold int, names ...string) ([]*Key, *Admins) {
	t.Helper()
	a := &Admins{Version: AdminsVersion, Threshold: threshold}
	var keys []*Key
	for i, n := range names {
		path := filepath.Join(dir, n+".key")
		ad, err := WriteKey(path, n, i%2 == 1)
		if err != nil {
			t.Fatal(err)
		}
		k, err := ReadKey(path)
		if err != nil {
			t.Fatal(err)
		}
		a.Admins = append(a.Admins, ad)
		keys = append(keys, k)
	}
	b, _ := json.Marshal(a)
	out, err := ParseAdmins(b)
	if err != nil {
		t.Fatal(err)
	}
	return keys, out
}

func signAll(t testing.TB, payload []byte, keys ...*Key) []byte {
	t.Helper()
	var env []byte
	for _, k := range keys {
		var e *dsse.Envelope
		if env != nil {
			var err error
			if e, _, _, err = ParseEnvelope(env); err != nil {
				t.Fatal(err)
			}
		}
		var err error
		if env, err = Sign(context.Background(), e, payload, k); err != nil {
			t.Fatal(err)
		}
	}
	return env
}

func packTestdata(t testing.TB) []byte {
	t.Helper()
	p, err := Pack("../testdata/policy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestSignVerifyThreshold(t *testing.T) {
	dir := t.TempDir()
	keys, admins := testKeys(t, dir, 2, "alice", "bob", "carol")
	payload := packTestdata(t)
	_, p, err := ParseDocument(payload)
	if err != nil {
		t.Fatal(err)
	}
	if p.Digest() != mustDigestFromDisk(t) {
		t.Fatalf("signed policy digest %s differs from the unsigned file's", p.Digest())
	}

	one := signAll(t, payload, keys[0])
	var te *ThresholdError
	if _, err := Verify(one, admins); !errors.As(err, &te) || te.Have != 1 || te.Want != 2 {
		t.Fatalf("1 of 2: %v", err)
	}
	two := signAll(t, payload, keys[0], keys[1])
	s, err := Verify(two, admins)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(s.Signers, ",") != "alice,bob" || s.Policy.Digest() != p.Digest() {
		t.Fatalf("signers %v digest %s", s.Signers, s.Policy.Digest())
	}
	// A signer twice counts once.
	e, _, _, _ := ParseEnvelope(one)
	if _, err := Sign(context.Background(), e, payload, keys[0]); err == nil {
		t.Fatal("the same key signed twice")
	}
	// A key outside the set does not count.
	other, _ := testKeys(t, t.TempDir(), 1, "mallory")
	if _, err := Verify(signAll(t, payload, keys[0], other[0]), admins); !errors.As(err, &te) {
		t.Fatalf("outside key counted: %v", err)
	}
	// A bare policy file is unsigned.
	raw, _ := os.ReadFile("../testdata/policy.yaml")
	if _, err := Verify(raw, admins); !errors.Is(err, ErrUnsigned) {
		t.Fatalf("bare YAML: %v", err)
	}
	// A payload swapped under the signatures does not verify.
	var env dsse.Envelope
	_ = json.Unmarshal(two, &env)
	env.Payload = []byte(strings.Replace(string(env.Payload), "max_size: 1048576", "max_size: 1048577", 1))
	bad, _ := env.Marshal()
	if _, err := Verify(bad, admins); !errors.As(err, &te) || te.Have != 0 {
		t.Fatalf("tampered payload: %v", err)
	}
}

func mustDigestFromDisk(t testing.TB) string {
	t.Helper()
	d, _, err := ParseDocument(packTestdata(t))
	if err != nil {
		t.Fatal(err)
	}
	p, err := d.Load()
	if err != nil {
		t.Fatal(err)
	}
	return p.Digest()
}

func TestSeparationOfDuties(t *testing.T) {
	keys, admins := testKeys(t, t.TempDir(), 1, "appsmith", "bob")
	env := signAll(t, packTestdata(t), keys[1])
	var de *DutiesError
	if _, err := Verify(env, admins); !errors.As(err, &de) || de.Principal != "appsmith" {
		t.Fatalf("admin as exporter: %v", err)
	}
	if !strings.Contains(de.Error(), `"appsmith"`) {
		t.Fatalf("error does not name the principal: %v", de)
	}
}

func TestDocumentStrict(t *testing.T) {
	payload := packTestdata(t)
	var d Document
	if err := json.Unmarshal(payload, &d); err != nil {
		t.Fatal(err)
	}
	cases := map[string][]byte{
		"not canonical":  []byte(" " + string(payload)),
		"unknown field":  []byte(strings.Replace(string(payload), `{"files"`, `{"extra":1,"files"`, 1)),
		"version 2":      []byte(strings.Replace(string(payload), `"version":1`, `"version":2`, 1)),
		"trailing":       append(append([]byte{}, payload...), '{', '}'),
		"unused file":    mustCanon(t, withFile(d, "schemas/unused.json", "{}")),
		"missing schema": mustCanon(t, withoutFile(d, "schemas/invoice-1.json")),
		"too large":      make([]byte, MaxPayload+1),
	}
	for name, b := range cases {
		if _, _, err := ParseDocument(b); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func withFile(d Document, name, s string) Document {
	f := map[string]string{}
	for k, v := range d.Files {
		f[k] = v
	}
	f[name] = s
	d.Files = f
	return d
}

func withoutFile(d Document, name string) Document {
	f := map[string]string{}
	for k, v := range d.Files {
		if k != name {
			f[k] = v
		}
	}
	d.Files = f
	return d
}

func mustCanon(t testing.TB, d Document) []byte {
	b, err := canonical(&d)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestAdminsStrict(t *testing.T) {
	_, a := testKeys(t, t.TempDir(), 2, "alice", "bob")
	good, _ := a.Marshal()
	for name, b := range map[string]string{
		"threshold above n": strings.Replace(string(good), `"threshold":2`, `"threshold":3`, 1),
		"version":           strings.Replace(string(good), `"version":1`, `"version":2`, 1),
		"unknown":           strings.Replace(string(good), `"threshold"`, `"x":1,"threshold"`, 1),
		"same name":         strings.Replace(string(good), `"bob"`, `"alice"`, 1),
		"no admins":         `{"version":1,"threshold":1,"admins":[]}`,
	} {
		if _, err := ParseAdmins([]byte(b)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := ParseAdmins(good); err != nil {
		t.Fatal(err)
	}
}

func TestDiff(t *testing.T) {
	old := packTestdata(t)
	var a Document
	_ = json.Unmarshal(old, &a)
	b := withFile(a, "schemas/invoice-1.json", strings.Replace(a.Files["schemas/invoice-1.json"], "{", "{\"description\":\"v2\",", 1))
	b.Policy = strings.Replace(a.Policy, "max_size: 1048576", "max_size: 2097152", 1)
	b.Policy = strings.Replace(b.Policy, "  - name: scans", "  - name: scans-v2", 1)
	ch, err := Diff(&a, &b)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, c := range ch {
		got = append(got, c.String())
	}
	want := "workflow invoices-daily changed [max_size]|workflow scans removed|workflow scans-v2 added|schema invoice@1 changed [content]"
	if strings.Join(got, "|") != want {
		t.Fatalf("diff\n got %s\nwant %s", strings.Join(got, "|"), want)
	}
}

func TestChangeBody(t *testing.T) {
	keys, admins := testKeys(t, t.TempDir(), 2, "alice", "bob")
	s, err := Verify(signAll(t, packTestdata(t), keys...), admins)
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(NewChangeBody(s, admins, ReasonStart))
	if err != nil {
		t.Fatal(err)
	}
	c, s2, err := ParseChangeBody(b)
	if err != nil {
		t.Fatal(err)
	}
	if c.Policy != s.Policy.Digest() || strings.Join(s2.Signers, ",") != "alice,bob" {
		t.Fatalf("%+v %v", c, s2.Signers)
	}
}

// The verifier's digest of a signed policy (bundle/verify, which does not
// load policies) is the agent's.
func TestVerifierDigestAgrees(t *testing.T) {
	d, p, err := ParseDocument(packTestdata(t))
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{}
	for n, f := range d.Files {
		files[n] = []byte(f)
	}
	if got := verify.PolicyDigest([]byte(d.Policy), files); got != p.Digest() {
		t.Fatalf("verify.PolicyDigest %s, policy.Digest %s", got, p.Digest())
	}
}
