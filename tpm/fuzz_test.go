package tpm

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-tpm/tpm2"

	"github.com/edgeseal/edgeseal/tpm/attest"
)

// validKeyFile builds a well-formed signing key file (with a made-up
// private blob) for seeds and tests.
func validKeyFile(t testing.TB, kind string) []byte {
	t.Helper()
	pcrs := []int{0, 2, 4, 7}
	vals := map[int][]byte{}
	for _, p := range pcrs {
		v := sha256.Sum256([]byte{byte(p)})
		vals[p] = v[:]
	}
	policy, err := policyPCRDigest(pcrs, vals)
	if err != nil {
		t.Fatal(err)
	}
	var pub tpm2.TPMTPublic
	if kind == keyKindSigning {
		pub = signingTemplate(policy)
		pt, _ := pub.Unique.ECC()
		// a real P-256 point: the generator
		pt.X.Buffer = hexBytes("6b17d1f2e12c4247f8bce6e563a440f277037d812deb33a0f4a13945d898c296")
		pt.Y.Buffer = hexBytes("4fe342e2fe1a7f9b8ee7eb4a7c0f9e162bce33576b315ececbb6406837bf51f5")
	} else {
		pub = sealTemplate(policy)
	}
	b, err := json.Marshal(keyFile{V: 1, Kind: kind, Public: tpm2.Marshal(&pub), Private: []byte{0, 1, 2}, PCRs: pcrs, PCRValues: vals})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func hexBytes(s string) []byte {
	out := make([]byte, len(s)/2)
	for i := range out {
		out[i] = unhex(s[2*i])<<4 | unhex(s[2*i+1])
	}
	return out
}

func unhex(c byte) byte {
	if c >= 'a' {
		return c - 'a' + 10
	}
	return c - '0'
}

func TestParseKeyFile(t *testing.T) {
	for _, kind := range []string{keyKindSigning, keyKindData} {
		good := validKeyFile(t, kind)
		k, err := parseKeyFile("f", kind, good)
		if err != nil {
			t.Fatalf("%s: valid file rejected: %v", kind, err)
		}
		if !bytes.Equal(k.policy, k.public.AuthPolicy.Buffer) {
			t.Fatal("policy not kept")
		}
		other := keyKindData
		if kind == keyKindData {
			other = keyKindSigning
		}
		if _, err := parseKeyFile("f", other, good); err == nil {
			t.Fatalf("%s file accepted as %s", kind, other)
		}
		var f keyFile
		if err := json.Unmarshal(good, &f); err != nil {
			t.Fatal(err)
		}
		f.PCRValues[7] = make([]byte, 32) // policy no longer matches
		b, _ := json.Marshal(f)
		if _, err := parseKeyFile("f", kind, b); err == nil {
			t.Fatalf("%s: file with changed PCR values accepted", kind)
		}
	}
	for _, bad := range []string{"", "{}", "null", `{"v":2}`, `{"v":1,"kind":"signing","pcrs":[7,0]}`} {
		if _, err := parseKeyFile("f", keyKindSigning, []byte(bad)); err == nil {
			t.Fatalf("accepted %q", bad)
		}
	}
}

func FuzzParseKeyFile(f *testing.F) {
	f.Add(validKeyFile(f, keyKindSigning))
	f.Add(validKeyFile(f, keyKindData))
	f.Add(validKeyFileV2(f, keyKindSigning))
	f.Add(validKeyFileV2(f, keyKindData))
	f.Add([]byte(`{"v":1,"kind":"signing","public":"AAA=","private":"AA==","pcrs":[0],"pcr_values":{"0":"AAAA"}}`))
	f.Add([]byte("{}"))
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, kind := range []string{keyKindSigning, keyKindData} {
			k, err := parseKeyFile("fuzz", kind, b)
			if err != nil {
				continue
			}
			// Whatever is accepted is self-consistent.
			p, err := policyPCRDigest(k.file.PCRs, k.file.PCRValues)
			if k.authorized() {
				p = attest.PolicyAuthorizeDigest(k.pkName, k.file.PolicyRef)
			}
			if err != nil || !bytes.Equal(p, k.public.AuthPolicy.Buffer) {
				t.Fatalf("accepted a key whose policy does not match: %v", err)
			}
			if !bytes.Equal(tpm2.Marshal(&k.public), k.file.Public) {
				t.Fatal("accepted a public area that does not round-trip")
			}
		}
	})
}

func FuzzParseCounterFile(f *testing.F) {
	f.Add([]byte(`{"v":1,"index":16780880,"value":42}`))
	f.Add([]byte(`{"v":2}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := parseCounterFile("fuzz", b)
		if err != nil {
			return
		}
		if c.V != 1 {
			t.Fatalf("accepted version %d", c.V)
		}
		again, _ := json.Marshal(c)
		c2, err := parseCounterFile("again", again)
		if err != nil || c2 != c {
			t.Fatalf("counter state does not round-trip: %+v %+v %v", c, c2, err)
		}
	})
}

func TestPolicyDigestKnownValue(t *testing.T) {
	// PolicyPCR over PCR 0 at all-zero value, computed by hand:
	// H(0^32 || 0000017F || 00000001 000B 03 010000 || H(0^32)).
	z := sha256.Sum256(make([]byte, 32))
	h := sha256.New()
	h.Write(make([]byte, 32))
	h.Write([]byte{0, 0, 1, 0x7f, 0, 0, 0, 1, 0, 0x0b, 3, 1, 0, 0})
	h.Write(z[:])
	got, err := policyPCRDigest([]int{0}, map[int][]byte{0: make([]byte, 32)})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, h.Sum(nil)) {
		t.Fatalf("policy digest %x, want %x", got, h.Sum(nil))
	}
	if _, err := policyPCRDigest([]int{0}, map[int][]byte{0: make([]byte, 20)}); err == nil {
		t.Fatal("accepted a 20-byte PCR value")
	}
}

func FuzzParseClockFile(f *testing.F) {
	f.Add([]byte(`{"v":1,"clock":123456}`))
	f.Add([]byte(`{"v":1,"clock":18446744073709551615}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := parseClockFile("fuzz", b)
		if err != nil {
			return
		}
		if s.V != 1 || s.Clock > maxClock {
			t.Fatalf("accepted %+v", s)
		}
		again, _ := json.Marshal(s)
		if s2, err := parseClockFile("again", again); err != nil || s2 != s {
			t.Fatalf("clock state does not round-trip: %+v %+v %v", s, s2, err)
		}
	})
}

// FuzzParseIdentityFile: the EK/AK record of the state dir never panics
// the parser, and what it accepts re-encodes to a file it accepts.
func FuzzParseIdentityFile(f *testing.F) {
	seed, err := os.ReadFile(filepath.Join("testdata", identityFile))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(seed)
	f.Add([]byte(`{"v":1}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		rec, err := parseIdentityFile(b)
		if err != nil {
			return
		}
		out, err := json.Marshal(rec)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := parseIdentityFile(out); err != nil {
			t.Fatalf("re-encoded identity file refused: %v", err)
		}
	})
}
