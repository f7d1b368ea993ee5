package tpm_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"math/big"
	"testing"

	"github.com/google/go-tpm/tpm2"

	"github.com/edgeseal/edgeseal/tpm/attest"
)

var ctx = context.Background()

func parsePublic(t testing.TB, b []byte) (*tpm2.TPMTPublic, *ecdsa.PublicKey) {
	t.Helper()
	pub, err := tpm2.Unmarshal[tpm2.TPMTPublic](b)
	if err != nil {
		t.Fatalf("public area: %v", err)
	}
	pt, err := pub.Unique.ECC()
	if err != nil {
		t.Fatalf("public area: %v", err)
	}
	raw := append([]byte{4}, append(pad32(pt.X.Buffer), pad32(pt.Y.Buffer)...)...)
	k, err := ecdsa.ParseUncompressedPublicKey(elliptic256(), raw)
	if err != nil {
		t.Fatalf("public key: %v", err)
	}
	return pub, k
}

func pad32(b []byte) []byte { return append(make([]byte, 32-len(b)), b...) }

// verifyTPMSig checks a TPMT_SIGNATURE (ECDSA SHA-256) over msg.
func verifyTPMSig(t testing.TB, key *ecdsa.PublicKey, msg, sigBytes []byte) {
	t.Helper()
	sig, err := tpm2.Unmarshal[tpm2.TPMTSignature](sigBytes)
	if err != nil {
		t.Fatalf("signature: %v", err)
	}
	ec, err := sig.Signature.ECDSA()
	if err != nil {
		t.Fatalf("signature: %v", err)
	}
	if ec.Hash != tpm2.TPMAlgSHA256 {
		t.Fatalf("signature hash %v", ec.Hash)
	}
	d := sha256.Sum256(msg)
	r, s := new(big.Int).SetBytes(ec.SignatureR.Buffer), new(big.Int).SetBytes(ec.SignatureS.Buffer)
	if !ecdsa.Verify(key, d[:], r, s) {
		t.Fatal("TPM signature does not verify")
	}
}

func TestKeysReloadAfterReopen(t *testing.T) {
	each(t, func(t *testing.T, r *rig) {
		tp := r.open(t)
		id1 := tp.Identity()
		mustClose(t, tp)
		r.restart(t)
		id2 := r.open(t).Identity()
		if id1.KeyID != id2.KeyID || !bytes.Equal(id1.SigningPublic, id2.SigningPublic) {
			t.Fatalf("signing key changed across reopen: %s vs %s", id1.KeyID, id2.KeyID)
		}
		if !bytes.Equal(id1.AKPublic, id2.AKPublic) || !bytes.Equal(id1.EKPublic, id2.EKPublic) {
			t.Fatal("AK or EK changed across reopen")
		}
		if !bytes.Equal(id1.Certify.Attest, id2.Certify.Attest) {
			t.Fatal("certification changed across reopen")
		}
		sum := sha256.Sum256(id1.SigningPublic)
		if want := "sha256:" + hexs(sum[:]); id1.KeyID != want {
			t.Fatalf("KeyID %s, want %s", id1.KeyID, want)
		}
		if len(id1.EKPublic) == 0 || len(id1.PCRValues) != len(id1.PCRs) {
			t.Fatalf("identity incomplete: %+v", id1)
		}
	})
}

func TestCertifyVerifies(t *testing.T) {
	each(t, func(t *testing.T, r *rig) {
		id := r.open(t).Identity()
		akPub, akKey := parsePublic(t, id.AKPublic)
		if !akPub.ObjectAttributes.Restricted || !akPub.ObjectAttributes.SignEncrypt {
			t.Fatal("AK is not a restricted signing key")
		}
		signPub, _ := parsePublic(t, id.SigningPublic)
		a := signPub.ObjectAttributes
		if a.Restricted || a.UserWithAuth || a.AdminWithPolicy || !a.FixedTPM || !a.FixedParent || !a.SensitiveDataOrigin {
			t.Fatalf("signing key attributes %+v", a)
		}
		if !bytes.Equal(signPub.AuthPolicy.Buffer, id.PolicyDigest) {
			t.Fatal("authPolicy is not Identity.PolicyDigest")
		}
		// The policy digest as go-tpm's calculator computes it.
		calc, err := tpm2.NewPolicyCalculator(tpm2.TPMAlgSHA256)
		if err != nil {
			t.Fatal(err)
		}
		h := sha256.New()
		for _, p := range id.PCRs {
			h.Write(id.PCRValues[p])
		}
		sel := make([]byte, 3)
		for _, p := range id.PCRs {
			sel[p/8] |= 1 << (p % 8)
		}
		if err := (tpm2.PolicyPCR{PcrDigest: tpm2.TPM2BDigest{Buffer: h.Sum(nil)}, Pcrs: tpm2.TPMLPCRSelection{
			PCRSelections: []tpm2.TPMSPCRSelection{{Hash: tpm2.TPMAlgSHA256, PCRSelect: sel}},
		}}).Update(calc); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(calc.Hash().Digest, id.PolicyDigest) {
			t.Fatalf("policy digest %x, go-tpm computes %x", id.PolicyDigest, calc.Hash().Digest)
		}

		verifyTPMSig(t, akKey, id.Certify.Attest, id.Certify.Signature)
		att, err := tpm2.Unmarshal[tpm2.TPMSAttest](id.Certify.Attest)
		if err != nil {
			t.Fatal(err)
		}
		if att.Type != tpm2.TPMSTAttestCertify {
			t.Fatalf("attest type %v", att.Type)
		}
		ci, err := att.Attested.Certify()
		if err != nil {
			t.Fatal(err)
		}
		name, err := tpm2.ObjectName(signPub)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(ci.Name.Buffer, name.Buffer) {
			t.Fatalf("certified name %x, signing key name %x", ci.Name.Buffer, name.Buffer)
		}
		akName, _ := tpm2.ObjectName(akPub)
		if !bytes.Equal(att.QualifiedSigner.Buffer, akName.Buffer) && len(att.QualifiedSigner.Buffer) == 0 {
			t.Fatal("no qualified signer")
		}
	})
}

func TestSignVerifies(t *testing.T) {
	each(t, func(t *testing.T, r *rig) {
		tp := r.open(t)
		_, key := parsePublic(t, tp.Identity().SigningPublic)
		d := sha256.Sum256([]byte("checkpoint"))
		sig, err := tp.Sign(ctx, d[:])
		if err != nil {
			t.Fatal(err)
		}
		if !ecdsa.VerifyASN1(key, d[:], sig) {
			t.Fatal("signature does not verify")
		}
		other := sha256.Sum256([]byte("other"))
		if ecdsa.VerifyASN1(key, other[:], sig) {
			t.Fatal("signature verifies for another digest")
		}
		if _, err := tp.Sign(ctx, d[:20]); err == nil {
			t.Fatal("Sign accepted a 20-byte digest")
		}
	})
}

func TestQuoteVerifies(t *testing.T) {
	each(t, func(t *testing.T, r *rig) {
		tp := r.open(t)
		_, akKey := parsePublic(t, tp.Identity().AKPublic)
		nonce := make([]byte, 32)
		rand.Read(nonce)
		q, err := tp.Quote(ctx, nonce)
		if err != nil {
			t.Fatal(err)
		}
		verifyTPMSig(t, akKey, q.Attest, q.Signature)
		att, err := tpm2.Unmarshal[tpm2.TPMSAttest](q.Attest)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(att.ExtraData.Buffer, nonce) {
			t.Fatalf("extraData %x, nonce %x", att.ExtraData.Buffer, nonce)
		}
		qi, err := att.Attested.Quote()
		if err != nil {
			t.Fatal(err)
		}
		h := sha256.New()
		for _, p := range q.PCRs {
			h.Write(q.Values[p])
		}
		if !bytes.Equal(qi.PCRDigest.Buffer, h.Sum(nil)) {
			t.Fatal("quote PCR digest does not match the returned values")
		}
		cur, err := tp.ReadPCRs(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range q.PCRs {
			if !bytes.Equal(cur[p], q.Values[p]) {
				t.Fatalf("pcr %d: quote %x, read %x", p, q.Values[p], cur[p])
			}
		}
		if !bytes.Equal(q.Files.Msg, q.Attest) || !bytes.Equal(q.Files.Sig, q.Signature) {
			t.Fatal("quote files differ from the quote")
		}
		pcrs, vals, err := attest.ParsePCRsFile(q.Files.PCRs)
		if err != nil {
			t.Fatal(err)
		}
		if len(pcrs) != len(q.PCRs) || !bytes.Equal(vals[pcrs[0]], q.Values[q.PCRs[0]]) {
			t.Fatal("pcr file does not round-trip")
		}
		if _, err := tp.Quote(ctx, make([]byte, 65)); err == nil {
			t.Fatal("Quote accepted a 65-byte nonce")
		}
	})
}
