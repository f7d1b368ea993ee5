package attest

import (
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/x509"
	"fmt"

	"github.com/google/go-tpm/tpm2"
)

// MaxCredentialSize bounds the credential value MakeCredential protects
// (a TPM2B_DIGEST: at most the EK's name hash size).
const MaxCredentialSize = 32

// MakeCredential is TPM2_MakeCredential done in software (TPM 2.0 Part 1,
// "Credential Protection"): it protects credential for the TPM whose
// endorsement key is ekPKIX (PKIX DER of an ECC P-256 EK made from the
// TCG default template: AES-128-CFB, SHA-256 name) and for the object
// whose public area is akPublic. Only that TPM, holding an object of that
// name, gets credential back with TPM2_ActivateCredential. It returns the
// credential blob (TPM2B_ID_OBJECT contents) and the encrypted seed
// (TPM2B_ENCRYPTED_SECRET contents: an ephemeral ECDH point).
func MakeCredential(ekPKIX, akPublic, credential []byte) (blob, encSecret []byte, err error) {
	if len(credential) == 0 || len(credential) > MaxCredentialSize {
		return nil, nil, fmt.Errorf("attest: make credential: %d byte credential (want 1..%d)", len(credential), MaxCredentialSize)
	}
	ek, err := EKPublicArea(ekPKIX)
	if err != nil {
		return nil, nil, err
	}
	ak, err := ParsePublic(akPublic)
	if err != nil {
		return nil, nil, fmt.Errorf("attest: make credential: ak: %w", err)
	}
	key, err := tpm2.ImportEncapsulationKey(ek)
	if err != nil {
		return nil, nil, fmt.Errorf("attest: make credential: %w", err)
	}
	blob, encSecret, err = tpm2.CreateCredential(rand.Reader, key, ak.Name, credential)
	if err != nil {
		return nil, nil, fmt.Errorf("attest: make credential: %w", err)
	}
	return blob, encSecret, nil
}

// EKPublicArea rebuilds the public area (TPMT_PUBLIC) of an ECC P-256
// endorsement key from its PKIX DER: the TCG default EK template with the
// key's point as its unique field.
func EKPublicArea(ekPKIX []byte) (*tpm2.TPMTPublic, error) {
	if len(ekPKIX) > MaxStructSize {
		return nil, formatErr("EK public key", "%d bytes exceeds %d", len(ekPKIX), MaxStructSize)
	}
	k, err := x509.ParsePKIXPublicKey(ekPKIX)
	if err != nil {
		return nil, &FormatError{Struct: "EK public key", Err: err}
	}
	ec, ok := k.(*ecdsa.PublicKey)
	if !ok {
		return nil, fmt.Errorf("%w: EK of type %T (want ECC P-256)", ErrUnsupported, k)
	}
	pub, err := ec.ECDH()
	if err != nil || pub.Curve() != ecdh.P256() {
		return nil, fmt.Errorf("%w: EK curve %s (want P-256)", ErrUnsupported, ec.Curve.Params().Name)
	}
	raw := pub.Bytes() // 0x04 || X || Y
	area := tpm2.ECCEKTemplate
	area.Unique = tpm2.NewTPMUPublicID(tpm2.TPMAlgECC, &tpm2.TPMSECCPoint{
		X: tpm2.TPM2BECCParameter{Buffer: raw[1:33]},
		Y: tpm2.TPM2BECCParameter{Buffer: raw[33:]},
	})
	return &area, nil
}
