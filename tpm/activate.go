package tpm

import (
	"context"
	"fmt"
	"slices"

	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"
)

// ActivationError reports a credential this TPM could not activate: it
// was not made for this TPM's EK, or not for its AK (TPM2_ActivateCredential
// checks both), or it was altered.
type ActivationError struct{ Err error }

func (e *ActivationError) Error() string {
	return "tpm: activate credential: not made for this TPM's EK and AK (or altered): " + e.Err.Error()
}

func (e *ActivationError) Unwrap() error { return e.Err }

// ActivateCredential recovers the credential an enrollment challenge
// protects (blob and encrypted seed from TPM2_MakeCredential, done by the
// archive for this TPM's EK and AK: tpm/attest.MakeCredential). It
// proves the AK lives in the TPM that holds the EK: only that TPM
// decrypts the seed, and it checks the AK's name against the blob.
//
// The EK (TCG template: admin with PolicySecret(endorsement)) is created
// for the call and flushed before it returns; with the AK and the signing
// key it makes three loaded objects, the emulators' limit.
func (t *TPM) ActivateCredential(ctx context.Context, blob, encSecret []byte) ([]byte, error) {
	if err := t.lock(ctx); err != nil {
		return nil, err
	}
	defer t.unlock()
	if err := t.ensureAK(); err != nil {
		return nil, err
	}
	ek, err := t.createPrimary(tpm2.TPMRHEndorsement, tpm2.ECCEKTemplate)
	if err != nil {
		return nil, fmt.Errorf("tpm: activate credential: ek: %w", err)
	}
	defer func() { _ = t.flush(ek.handle) }()
	endorsement := func(tp transport.TPM, h tpm2.TPMISHPolicy, nonce tpm2.TPM2BNonce) error {
		_, err := tpm2.PolicySecret{
			AuthHandle:    tpm2.AuthHandle{Handle: tpm2.TPMRHEndorsement, Auth: tpm2.PasswordAuth(nil)},
			PolicySession: h,
			NonceTPM:      nonce,
		}.Execute(tp)
		return err
	}
	rsp, err := tpm2.ActivateCredential{
		ActivateHandle: tpm2.AuthHandle{Handle: t.ak, Name: t.akName, Auth: tpm2.PasswordAuth(nil)},
		KeyHandle:      tpm2.AuthHandle{Handle: ek.handle, Name: ek.name, Auth: tpm2.Policy(tpm2.TPMAlgSHA256, 16, endorsement)},
		CredentialBlob: tpm2.TPM2BIDObject{Buffer: blob},
		Secret:         tpm2.TPM2BEncryptedSecret{Buffer: encSecret},
	}.Execute(t.tr)
	if err != nil {
		return nil, &ActivationError{Err: err}
	}
	return slices.Clone(rsp.CertInfo.Buffer), nil
}
