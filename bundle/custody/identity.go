package custody

import (
	"crypto/sha256"

	"github.com/edgeseal/edgeseal/bundle/wire"
)

// Identity is the public TPM material of a device, the byte-level mirror
// of tpm.Identity (bundle does not import tpm).
type Identity struct {
	EKPublic      []byte // PKIX DER
	EKCert        []byte // DER, nil if none
	AKPublic      []byte // TPMT_PUBLIC
	SigningPublic []byte // TPMT_PUBLIC
	Certify       Attestation
	PCRs          []int
	PCRValues     map[int][]byte
	PolicyDigest  []byte
	KeyID         string
	PCRPolicyKey  []byte // PKIX DER of the operator's PCR-policy key, nil if the keys are bound to fixed values
}

// Attestation is a TPMS_ATTEST with its TPMT_SIGNATURE.
type Attestation struct{ Attest, Signature []byte }

// KeyID is "sha256:<hex>" of a public area, the id of a signing key.
func KeyID(public []byte) string {
	sum := sha256.Sum256(public)
	return wire.FormatHash(sum)
}
