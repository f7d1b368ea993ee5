package tpm_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/edgeseal/edgeseal/tpm"
	"github.com/edgeseal/edgeseal/tpm/attest"
	"github.com/edgeseal/edgeseal/tpm/swtpmtest"
)

// signAuthorization is what the operator's tool does: sign
// SHA-256(PolicyPCR(values) || ref) with the policy key.
func signAuthorization(t testing.TB, key *ecdsa.PrivateKey, ref []byte, pcrs []int, values map[int][]byte) tpm.PCRAuthorization {
	t.Helper()
	approved, err := attest.PolicyPCRDigest(pcrs, values)
	if err != nil {
		t.Fatal(err)
	}
	sig, err := ecdsa.SignASN1(rand.Reader, key, attest.AuthorizationDigest(approved, ref))
	if err != nil {
		t.Fatal(err)
	}
	return tpm.PCRAuthorization{PCRs: pcrs, Values: values, Signature: sig}
}

func newPolicyKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// TestPCRAuthorization: keys bound to a PCR-policy key sign and unseal
// only under an authorization; after an extend they fail with
// *PCRMismatchError, and a new authorization of the new values brings them
// back. Authorizations by another key or for another policyRef are refused
// by the TPM itself.
func TestPCRAuthorization(t *testing.T) {
	each(t, func(t *testing.T, r *rig) {
		ctx := context.Background()
		op := newPolicyKey(t)
		ref := sha256.Sum256([]byte("edgeseal pcr policy v1\nsite-a/dev-1"))
		r.opts.PCRPolicy = &tpm.PCRPolicy{Key: &op.PublicKey, Ref: ref[:]}
		tp := r.open(t)
		id := tp.Identity()
		der, _ := x509.MarshalPKIXPublicKey(&op.PublicKey)
		if string(id.PCRPolicyKey) != string(der) || string(id.PCRPolicyRef) != string(ref[:]) {
			t.Fatalf("identity does not name the policy key and ref")
		}
		pkArea, _ := attest.PolicyKeyPublic(&op.PublicKey)
		if want := attest.PolicyAuthorizeDigest(attest.Name(pkArea), ref[:]); string(id.PolicyDigest) != string(want) {
			t.Fatalf("policy digest %x, want PolicyAuthorize %x", id.PolicyDigest, want)
		}
		signKey, err := attest.ParsePublic(id.SigningPublic)
		if err != nil {
			t.Fatal(err)
		}
		digest := sha256.Sum256([]byte("checkpoint"))

		// No authorization yet: a typed error saying so.
		_, err = tp.Sign(ctx, digest[:])
		var need *tpm.AuthorizationNeededError
		if !errors.As(err, &need) || need.Key != "signing" || len(need.Current) != len(id.PCRs) {
			t.Fatalf("sign without authorization: %v, want *AuthorizationNeededError with current values", err)
		}
		if _, err := tp.DataKey(ctx); !errors.As(err, &need) || need.Key != "data" {
			t.Fatalf("data key without authorization: %v", err)
		}

		cur, err := tp.ReadPCRs(ctx)
		if err != nil {
			t.Fatal(err)
		}
		// Refused by the TPM: another key, another device's ref, other values.
		other := newPolicyKey(t)
		var aerr *tpm.AuthorizationError
		if err := tp.Authorize(ctx, signAuthorization(t, other, ref[:], id.PCRs, cur)); !errors.As(err, &aerr) {
			t.Fatalf("authorization by another key: %v, want *AuthorizationError", err)
		}
		otherRef := sha256.Sum256([]byte("edgeseal pcr policy v1\nsite-a/dev-2"))
		if err := tp.Authorize(ctx, signAuthorization(t, op, otherRef[:], id.PCRs, cur)); !errors.As(err, &aerr) {
			t.Fatalf("authorization for another device: %v, want *AuthorizationError", err)
		}
		good := signAuthorization(t, op, ref[:], id.PCRs, cur)
		tampered := good
		tampered.Values = map[int][]byte{}
		for p, v := range cur {
			tampered.Values[p] = v
		}
		tampered.Values[id.PCRs[0]] = sha256.New().Sum([]byte{1})[1:]
		if err := tp.Authorize(ctx, tampered); !errors.As(err, &aerr) {
			t.Fatalf("authorization with other values than signed: %v", err)
		}
		if _, err := tp.Sign(ctx, digest[:]); !errors.As(err, &need) {
			t.Fatalf("a refused authorization was installed: %v", err)
		}

		if err := tp.Authorize(ctx, good); err != nil {
			t.Fatalf("authorize: %v", err)
		}
		sig, err := tp.Sign(ctx, digest[:])
		if err != nil {
			t.Fatalf("sign under authorization: %v", err)
		}
		if !ecdsa.VerifyASN1(signKey.Key, digest[:], sig) {
			t.Fatal("signature does not verify under the signing key")
		}
		dk, err := tp.DataKey(ctx)
		if err != nil || len(dk) != 32 {
			t.Fatalf("data key under authorization: %v", err)
		}

		// A firmware update moves PCR 0.
		if err := tp.ExtendPCR(ctx, id.PCRs[0], []byte("new firmware")); err != nil {
			t.Fatal(err)
		}
		var mm *tpm.PCRMismatchError
		if _, err := tp.Sign(ctx, digest[:]); !errors.As(err, &mm) || !mm.Authorized || len(mm.Changed()) != 1 || mm.Changed()[0] != id.PCRs[0] {
			t.Fatalf("sign after extend: %v, want *PCRMismatchError on pcr %d", err, id.PCRs[0])
		}
		if _, err := tp.DataKey(ctx); !errors.As(err, &mm) {
			t.Fatalf("data key after extend: %v, want *PCRMismatchError", err)
		}
		cur2, err := tp.ReadPCRs(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := tp.Authorize(ctx, signAuthorization(t, op, ref[:], id.PCRs, cur2)); err != nil {
			t.Fatalf("authorize new values: %v", err)
		}
		if sig, err = tp.Sign(ctx, digest[:]); err != nil || !ecdsa.VerifyASN1(signKey.Key, digest[:], sig) {
			t.Fatalf("sign after the new authorization: %v", err)
		}
		dk2, err := tp.DataKey(ctx)
		if err != nil || string(dk2) != string(dk) {
			t.Fatalf("data key after the new authorization: %v (same key: %v)", err, string(dk2) == string(dk))
		}

		// The binding survives a reopen; the authorization is installed
		// again (the caller keeps it).
		mustClose(t, tp)
		r.opts.PCRPolicy = nil
		p, pcrs, ok, err := tpm.ReadPCRPolicy(r.opts.StateDir)
		if err != nil || !ok || !p.Key.Equal(&op.PublicKey) || string(p.Ref) != string(ref[:]) || len(pcrs) != len(id.PCRs) {
			t.Fatalf("ReadPCRPolicy: %v ok=%v", err, ok)
		}
		if r.name == "simulator" {
			return // a reopened simulator has reset its PCRs
		}
		tp = r.open(t)
		if _, err := tp.Sign(ctx, digest[:]); !errors.As(err, &need) {
			t.Fatalf("sign after reopen without authorization: %v", err)
		}
		if err := tp.Authorize(ctx, signAuthorization(t, op, ref[:], id.PCRs, cur2)); err != nil {
			t.Fatal(err)
		}
		if _, err := tp.Sign(ctx, digest[:]); err != nil {
			t.Fatalf("sign after reopen: %v", err)
		}
	})
}

// TestLegacyKeyRefusesAuthorization: a key bound to fixed PCR values
// keeps working and refuses an authorization.
func TestLegacyKeyRefusesAuthorization(t *testing.T) {
	r := rigMakers[0](t)
	tp := r.open(t)
	ctx := context.Background()
	if tp.Identity().PCRPolicyKey != nil {
		t.Fatal("legacy key names a policy key")
	}
	d := sha256.Sum256([]byte("x"))
	if _, err := tp.Sign(ctx, d[:]); err != nil {
		t.Fatalf("legacy sign: %v", err)
	}
	cur, _ := tp.ReadPCRs(ctx)
	var aerr *tpm.AuthorizationError
	if err := tp.Authorize(ctx, signAuthorization(t, newPolicyKey(t), []byte("ref"), tp.Identity().PCRs, cur)); !errors.As(err, &aerr) {
		t.Fatalf("authorize a legacy key: %v", err)
	}
	if _, _, ok, err := tpm.ReadPCRPolicy(r.opts.StateDir); err != nil || ok {
		t.Fatalf("ReadPCRPolicy of a legacy key: ok=%v %v", ok, err)
	}
}

// TestSwtpmPCRExtendByToolWhileOpen: a firmware-update stand-in,
// tpm2_pcrextend over TCTI swtpm:, runs while a TPM is open on the same
// swtpm (the transport lets go of an idle connection); the signing key
// then refuses with *PCRMismatchError until the new values are
// authorized.
func TestSwtpmPCRExtendByToolWhileOpen(t *testing.T) {
	tool := swtpmtest.Need(t, "tpm2_pcrextend")
	r := swtpmRig(t)
	op := newPolicyKey(t)
	ref := sha256.Sum256([]byte("edgeseal pcr policy v1\nsite-a/dev-1"))
	r.opts.PCRPolicy = &tpm.PCRPolicy{Key: &op.PublicKey, Ref: ref[:]}
	tp := r.open(t)
	ctx := context.Background()
	id := tp.Identity()
	cur, _ := tp.ReadPCRs(ctx)
	if err := tp.Authorize(ctx, signAuthorization(t, op, ref[:], id.PCRs, cur)); err != nil {
		t.Fatal(err)
	}
	d := sha256.Sum256([]byte("seal"))
	if _, err := tp.Sign(ctx, d[:]); err != nil {
		t.Fatal(err)
	}
	host, port, _ := strings.Cut(r.sw.Addr, ":")
	cctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	out, err := exec.CommandContext(cctx, tool, "-T", "swtpm:host="+host+",port="+port,
		"0:sha256="+strings.Repeat("ab", 32)).CombinedOutput()
	if err != nil {
		t.Fatalf("tpm2_pcrextend while the TPM is open: %v\n%s", err, out)
	}
	var mm *tpm.PCRMismatchError
	if _, err := tp.Sign(ctx, d[:]); !errors.As(err, &mm) || len(mm.Changed()) != 1 || mm.Changed()[0] != 0 {
		t.Fatalf("sign after the extend: %v", err)
	}
	cur2, _ := tp.ReadPCRs(ctx)
	if err := tp.Authorize(ctx, signAuthorization(t, op, ref[:], id.PCRs, cur2)); err != nil {
		t.Fatal(err)
	}
	if _, err := tp.Sign(ctx, d[:]); err != nil {
		t.Fatalf("sign after the new authorization: %v", err)
	}
}
