package attest_test

import (
	"bytes"
	"testing"

	"github.com/edgeseal/edgeseal/tpm/attest"
	"github.com/edgeseal/edgeseal/tpm/attest/attesttest"
)

func FuzzParsePublic(f *testing.F) {
	tp := newTPM(f)
	f.Add(tp.AKPublic())
	f.Add(tp.SigningPublic())
	f.Add([]byte{0, 0x23, 0, 0x0b})
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := attest.ParsePublic(b)
		if err != nil {
			return
		}
		again := attesttest.PublicArea(p.Key, attesttest.Attributes{
			FixedTPM: p.FixedTPM, FixedParent: p.FixedParent, SensitiveDataOrigin: p.SensitiveDataOrigin,
			UserWithAuth: p.UserWithAuth, AdminWithPolicy: p.AdminWithPolicy,
			Restricted: p.Restricted, SignEncrypt: p.SignEncrypt, Decrypt: p.Decrypt,
		}, p.AuthPolicy)
		if !bytes.Equal(attest.Name(b), p.Name) {
			t.Fatal("name not over input")
		}
		// Only the attribute bits and the scheme may differ from our template.
		if len(again) != len(b) && p.AuthPolicy != nil {
			t.Logf("template differs in layout (scheme): %d vs %d", len(again), len(b))
		}
	})
}

func FuzzParseAttest(f *testing.F) {
	tp := newTPM(f)
	q, _ := tp.Quote([]byte("nonce"))
	c, _ := tp.Certify(tp.AKPublic())
	f.Add(q)
	f.Add(c)
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := attest.ParseAttest(b)
		if err != nil {
			return
		}
		if a.Type != attest.TypeQuote && a.Type != attest.TypeCertify {
			t.Fatalf("type %#x accepted", a.Type)
		}
		if a.Type == attest.TypeQuote && len(a.PCRs) == 0 {
			t.Fatal("quote without pcrs accepted")
		}
	})
}

func FuzzParseSignature(f *testing.F) {
	tp := newTPM(f)
	_, sig := tp.Quote(nil)
	f.Add(sig)
	f.Fuzz(func(t *testing.T, b []byte) {
		r, s, err := attest.ParseSignature(b)
		if err == nil && (r == nil || s == nil) {
			t.Fatal("nil scalars without error")
		}
	})
}

func FuzzParsePCRsFile(f *testing.F) {
	tp := newTPM(f)
	f.Add(tp.PCRsFile())
	f.Fuzz(func(t *testing.T, b []byte) {
		pcrs, values, err := attest.ParsePCRsFile(b)
		if err != nil {
			return
		}
		again, err := attest.MarshalPCRsFile(pcrs, values)
		if err != nil || !bytes.Equal(again, b) {
			t.Fatalf("round trip: %v", err)
		}
	})
}
