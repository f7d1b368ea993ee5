package tpm_test

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/edgeseal/edgeseal/tpm"
	"github.com/edgeseal/edgeseal/tpm/attest"
	"github.com/edgeseal/edgeseal/tpm/swtpmtest"
)

// TestActivateCredential: the archive's software MakeCredential for a
// TPM's EK and AK is activated by that TPM alone; a credential made for
// an EK and an AK of two different TPMs is activated by neither (the AK
// is not bound to the EK).
func TestActivateCredential(t *testing.T) {
	each(t, func(t *testing.T, r *rig) {
		ctx := context.Background()
		a := r.open(t)
		other := swtpmtest.Start(t)
		b, err := tpm.Open(ctx, other.Spec, tpm.Options{StateDir: t.TempDir(), Create: true})
		if err != nil {
			t.Fatal(err)
		}
		defer b.Close()
		ida, idb := a.Identity(), b.Identity()
		if bytes.Equal(ida.EKPublic, idb.EKPublic) {
			t.Fatal("two TPMs with one EK")
		}
		secret := []byte("0123456789abcdef0123456789abcdef")

		blob, enc, err := attest.MakeCredential(ida.EKPublic, ida.AKPublic, secret)
		if err != nil {
			t.Fatal(err)
		}
		got, err := a.ActivateCredential(ctx, blob, enc)
		if err != nil {
			t.Fatalf("%s: activate its own credential: %v", r.name, err)
		}
		if !bytes.Equal(got, secret) {
			t.Fatalf("activated %x, want %x", got, secret)
		}
		// Slots: the EK was flushed, so the keys still sign.
		if _, err := a.Sign(ctx, make([]byte, 32)); err != nil {
			t.Fatalf("sign after activation: %v", err)
		}

		// The EK of a, the AK of b: the request's AK is not a's.
		blob, enc, err = attest.MakeCredential(ida.EKPublic, idb.AKPublic, secret)
		if err != nil {
			t.Fatal(err)
		}
		for name, tp := range map[string]*tpm.TPM{"the AK's TPM": b, "the EK's TPM": a} {
			got, err := tp.ActivateCredential(ctx, blob, enc)
			if _, ok := errors.AsType[*tpm.ActivationError](err); !ok {
				t.Errorf("%s activated a credential for another TPM's EK and AK: %x, %v", name, got, err)
			}
		}
		// The EK of b, the AK of a.
		blob, enc, err = attest.MakeCredential(idb.EKPublic, ida.AKPublic, secret)
		if err != nil {
			t.Fatal(err)
		}
		if got, err := a.ActivateCredential(ctx, blob, enc); err == nil {
			t.Errorf("%s activated a credential made for another EK: %x", r.name, got)
		}
	})
}
