package tpm_test

import (
	"bytes"
	"crypto/sha256"
	"testing"

	"github.com/edgeseal/edgeseal/tpm/attest"
)

// TestSeamWithAttest checks what this package produces against the
// offline verifier in tpm/attest, the way bundle verification will.
func TestSeamWithAttest(t *testing.T) {
	each(t, func(t *testing.T, r *rig) {
		tp := r.open(t)
		id := tp.Identity()
		ak, err := attest.ParsePublic(id.AKPublic)
		if err != nil {
			t.Fatalf("AK public: %v", err)
		}
		sk, err := attest.ParsePublic(id.SigningPublic)
		if err != nil {
			t.Fatalf("signing public: %v", err)
		}
		if err := attest.VerifyCertify(ak, id.Certify.Attest, id.Certify.Signature, sk); err != nil {
			t.Fatalf("VerifyCertify: %v", err)
		}
		pd, err := attest.PolicyPCRDigest(id.PCRs, id.PCRValues)
		if err != nil || !bytes.Equal(pd, id.PolicyDigest) || !bytes.Equal(sk.AuthPolicy, pd) {
			t.Fatalf("policy digest: attest %x, tpm %x (%v)", pd, id.PolicyDigest, err)
		}
		nonce := sha256.Sum256([]byte("checkpoint"))
		q, err := tp.Quote(ctx, nonce[:])
		if err != nil {
			t.Fatal(err)
		}
		qi, err := attest.VerifyQuote(ak, q.Attest, q.Signature, nonce[:], q.PCRs, q.Values)
		if err != nil {
			t.Fatalf("VerifyQuote: %v", err)
		}
		if _, err := attest.VerifyQuote(ak, q.Attest, q.Signature, make([]byte, 32), q.PCRs, q.Values); err == nil {
			t.Fatal("VerifyQuote accepted a wrong nonce")
		}
		if qi.Clock.Clock == 0 {
			t.Fatal("quote clock is zero: clock info obfuscated or missing")
		}
		// Not checked here: attest.ParsePCRsFile reads TPM-marshalled
		// (big-endian) structures, which tpm2_checkquote 5.4 rejects;
		// Quote.Files.PCRs is the serialized layout it accepts (see
		// TestCheckquote).
	})
}
