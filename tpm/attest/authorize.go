package attest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
	"encoding/binary"
	"errors"

	"github.com/google/go-tpm/tpm2"
)

// PolicyKeyPublic is the TPMT_PUBLIC under which a TPM loads an operator's
// ECDSA P-256 PCR-policy key (TPM2_LoadExternal, public part only) to check
// its signatures with TPM2_VerifySignature: nameAlg SHA-256, signEncrypt
// only (an external public key may not be fixedTPM or fixedParent), scheme
// ECDSA-SHA256, no authPolicy. Its Name is what TPM2_PolicyAuthorize binds
// a key to, so every party must build these exact bytes.
func PolicyKeyPublic(key *ecdsa.PublicKey) ([]byte, error) {
	if key == nil || key.Curve != elliptic.P256() {
		return nil, errors.New("attest: pcr policy key: want an ECDSA P-256 key")
	}
	raw, err := key.Bytes() // 0x04 || X || Y, 32 bytes each
	if err != nil {
		return nil, errors.New("attest: pcr policy key: " + err.Error())
	}
	pub := tpm2.TPMTPublic{
		Type:             tpm2.TPMAlgECC,
		NameAlg:          tpm2.TPMAlgSHA256,
		ObjectAttributes: tpm2.TPMAObject{SignEncrypt: true},
		Parameters:       ECDSAP256Parms(),
		Unique:           ECCUnique(raw[1:33], raw[33:]),
	}
	return tpm2.Marshal(&pub), nil
}

// PolicyAuthorizeDigest is the policy digest of a trial session that ran
// TPM2_PolicyAuthorize(keySign = keyName, policyRef) from the all-zero
// SHA-256 start: H(H(0^32 || TPM_CC_PolicyAuthorize || keyName) ||
// policyRef). It is the authPolicy of a key usable under any policy that
// the holder of the key named keyName signs for policyRef.
func PolicyAuthorizeDigest(keyName, policyRef []byte) []byte {
	h := sha256.New()
	h.Write(make([]byte, sha256.Size))
	h.Write(binary.BigEndian.AppendUint32(nil, uint32(tpm2.TPMCCPolicyAuthorize)))
	h.Write(keyName)
	first := h.Sum(nil)
	h.Reset()
	h.Write(first)
	h.Write(policyRef)
	return h.Sum(nil)
}

// AuthorizationDigest is what an operator's PCR-policy key signs and what
// TPM2_VerifySignature checks before TPM2_PolicyAuthorize accepts an
// approved policy: aHash = SHA-256(approvedPolicy || policyRef).
func AuthorizationDigest(approvedPolicy, policyRef []byte) []byte {
	h := sha256.New()
	h.Write(approvedPolicy)
	h.Write(policyRef)
	return h.Sum(nil)
}
