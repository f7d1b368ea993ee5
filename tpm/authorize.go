package tpm

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"encoding/asn1"
	"errors"
	"fmt"
	"math/big"
	"slices"

	"github.com/edgeseal/edgeseal/tpm/attest"
	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"
)

// MaxPolicyRef bounds a policyRef (a TPM2B_NONCE of the SHA-256 size).
const MaxPolicyRef = 32

// PCRPolicy binds the keys Open creates to an operator's PCR-policy key
// instead of fixed PCR values: their authPolicy is TPM2_PolicyAuthorize
// (Name of Key loaded as attest.PolicyKeyPublic, Ref), so they are usable
// under whatever PCR values the operator signs for Ref.
type PCRPolicy struct {
	Key *ecdsa.PublicKey // ECDSA P-256
	Ref []byte           // policyRef, 1 to MaxPolicyRef bytes; names the device
}

// PCRAuthorization is an operator's signed approval of PCR values for a
// key bound to a PCR policy: Signature is the ASN.1 DER ECDSA signature
// by the policy key over SHA-256(PolicyPCR digest of Values || policyRef).
type PCRAuthorization struct {
	PCRs      []int
	Values    map[int][]byte
	Signature []byte
}

// authState is the authorization in force: its approved policy and the
// TPM's ticket that the policy key signed it.
type authState struct {
	pcrs     []int
	values   map[int][]byte
	approved []byte
	ref      []byte
	keyName  []byte
	ticket   tpm2.TPMTTKVerified
}

// parsedPolicyKey is a PCR-policy key read from a key file.
type parsedPolicyKey struct {
	Key  *ecdsa.PublicKey
	Name []byte
}

// parsePolicyKey checks the saved public area of a PCR-policy key (it must
// be exactly attest.PolicyKeyPublic of its key) and its policyRef.
func parsePolicyKey(area, ref []byte) (*parsedPolicyKey, error) {
	if len(ref) == 0 || len(ref) > MaxPolicyRef {
		return nil, fmt.Errorf("policyRef of %d bytes", len(ref))
	}
	pub, err := attest.ParsePublic(area)
	if err != nil {
		return nil, err
	}
	want, err := attest.PolicyKeyPublic(pub.Key)
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(want, area) {
		return nil, errors.New("public area is not the PCR policy key template")
	}
	return &parsedPolicyKey{Key: pub.Key, Name: pub.Name}, nil
}

// keyPolicy is the PCR policy new keys are bound to: Options.PCRPolicy,
// else the one the current signing key is bound to, else none (PolicyPCR).
func (t *TPM) keyPolicy() (area, ref []byte, err error) {
	switch {
	case t.pcrPolicy != nil:
		area, err := attest.PolicyKeyPublic(t.pcrPolicy.Key)
		if err != nil {
			return nil, nil, err
		}
		if len(t.pcrPolicy.Ref) == 0 || len(t.pcrPolicy.Ref) > MaxPolicyRef {
			return nil, nil, fmt.Errorf("policyRef of %d bytes", len(t.pcrPolicy.Ref))
		}
		return area, slices.Clone(t.pcrPolicy.Ref), nil
	case t.signKey != nil && t.signKey.authorized():
		return slices.Clone(t.signKey.file.PolicyKey), slices.Clone(t.signKey.file.PolicyRef), nil
	}
	return nil, nil, nil
}

// ReadPCRPolicy reads the PCR policy the signing key in stateDir is bound
// to without opening the TPM (a running agent holds it). ok is false for a
// key bound to fixed PCR values; an absent key is an error.
func ReadPCRPolicy(stateDir string) (p PCRPolicy, pcrs []int, ok bool, err error) {
	b, err := readState(stateDir, signKeyFile)
	if err != nil {
		return PCRPolicy{}, nil, false, err
	}
	if b == nil {
		return PCRPolicy{}, nil, false, &StateError{File: signKeyFile, Reason: "absent (run edgeseal tpm enroll)"}
	}
	k, err := parseKeyFile(signKeyFile, keyKindSigning, b)
	if err != nil {
		return PCRPolicy{}, nil, false, err
	}
	if !k.authorized() {
		return PCRPolicy{}, slices.Clone(k.file.PCRs), false, nil
	}
	return PCRPolicy{Key: k.pkey, Ref: slices.Clone(k.file.PolicyRef)}, slices.Clone(k.file.PCRs), true, nil
}

// Authorize installs an operator's authorization of PCR values for the
// signing key and the data key: the TPM itself checks its signature
// (TPM2_LoadExternal of the policy key in the owner hierarchy,
// TPM2_VerifySignature) and the ticket it returns is kept for the
// TPM2_PolicyAuthorize of every later Sign and DataKey. It replaces the
// authorization in force only when it is accepted; it does not check that
// the PCRs hold the values now (Sign and DataKey then fail with
// *PCRMismatchError). It returns *AuthorizationError when the keys are not
// bound to a PCR policy or the TPM refuses the signature.
func (t *TPM) Authorize(ctx context.Context, a PCRAuthorization) error {
	if err := t.lock(ctx); err != nil {
		return err
	}
	defer t.unlock()
	k := t.signKey
	if !k.authorized() {
		return &AuthorizationError{Reason: "the signing key is bound to fixed PCR values, not to a PCR policy key"}
	}
	pcrs := sortedPCRs(a.PCRs)
	if !slices.Equal(pcrs, a.PCRs) || !slices.Equal(pcrs, k.file.PCRs) {
		return &AuthorizationError{Reason: fmt.Sprintf("authorizes pcrs %v, the keys are bound to %v", a.PCRs, k.file.PCRs)}
	}
	approved, err := policyPCRDigest(pcrs, a.Values)
	if err != nil {
		return &AuthorizationError{Reason: "pcr values", Err: err}
	}
	sig, err := ecdsaTPMSignature(a.Signature)
	if err != nil {
		return &AuthorizationError{Reason: "signature", Err: err}
	}
	// Slots: the AK and the signing key may be loaded; the policy key is
	// the third object, flushed before returning.
	ext, err := tpm2.LoadExternal{
		InPublic:  tpm2.BytesAs2B[tpm2.TPMTPublic](k.file.PolicyKey),
		Hierarchy: tpm2.TPMRHOwner, // a NULL-hierarchy key gives a NULL ticket PolicyAuthorize refuses
	}.Execute(t.tr)
	if err != nil {
		return fmt.Errorf("tpm: authorize: load policy key: %w", err)
	}
	vrsp, err := tpm2.VerifySignature{
		KeyHandle: tpm2.NamedHandle{Handle: ext.ObjectHandle, Name: ext.Name},
		Digest:    tpm2.TPM2BDigest{Buffer: attest.AuthorizationDigest(approved, k.file.PolicyRef)},
		Signature: *sig,
	}.Execute(t.tr)
	ferr := t.flush(ext.ObjectHandle)
	if err != nil {
		if errors.Is(err, tpm2.TPMRCSignature) {
			return &AuthorizationError{Reason: "the TPM refused the signature: not by this device's PCR policy key, or not for this device", Err: err}
		}
		return fmt.Errorf("tpm: authorize: verify signature: %w", err)
	}
	if ferr != nil {
		return ferr
	}
	if !bytes.Equal(ext.Name.Buffer, k.pkName) {
		return fmt.Errorf("tpm: authorize: loaded policy key name %x, key file names %x", ext.Name.Buffer, k.pkName)
	}
	t.auth = &authState{
		pcrs: pcrs, values: cloneValues(a.Values), approved: approved,
		ref: slices.Clone(k.file.PolicyRef), keyName: slices.Clone(k.pkName), ticket: vrsp.Validation,
	}
	t.log.Info("tpm: pcr values authorized", "pcrs", pcrs)
	return nil
}

// Authorized reports the PCR values of the authorization in force (nil
// when there is none).
func (t *TPM) Authorized() map[int][]byte {
	if err := t.lock(context.Background()); err != nil {
		return nil
	}
	defer t.unlock()
	if t.auth == nil {
		return nil
	}
	return cloneValues(t.auth.values)
}

// policyFor is the policy session that authorizes k: PolicyPCR over its
// values for a key bound to fixed values; PolicyPCR over the authorized
// values then PolicyAuthorize with the kept ticket for a key bound to a
// PCR policy key (*AuthorizationNeededError when none is installed).
func (t *TPM) policyFor(k *loadedKey) (tpm2.Session, error) {
	if !k.authorized() {
		return pcrPolicy(k), nil
	}
	a := t.auth
	if a == nil {
		cur, _ := t.readPCRs(k.file.PCRs)
		return nil, &AuthorizationNeededError{Key: k.file.Kind, PCRs: slices.Clone(k.file.PCRs), Current: cur}
	}
	if !bytes.Equal(a.keyName, k.pkName) || !bytes.Equal(a.ref, k.file.PolicyRef) {
		return nil, &AuthorizationError{Reason: fmt.Sprintf("the %s key is bound to another PCR policy key or policyRef than the signing key", k.file.Kind)}
	}
	digest := pcrDigest(a.pcrs, a.values)
	sel := pcrSelection(a.pcrs)
	return tpm2.Policy(tpm2.TPMAlgSHA256, 16, func(tr transport.TPM, h tpm2.TPMISHPolicy, _ tpm2.TPM2BNonce) error {
		_, err := tpm2.PolicyPCR{PolicySession: h, PcrDigest: tpm2.TPM2BDigest{Buffer: digest}, Pcrs: sel}.Execute(tr)
		if err == nil {
			_, err = tpm2.PolicyAuthorize{
				PolicySession:  h,
				ApprovedPolicy: tpm2.TPM2BDigest{Buffer: a.approved},
				PolicyRef:      tpm2.TPM2BDigest{Buffer: a.ref},
				KeySign:        tpm2.TPM2BName{Buffer: a.keyName},
				CheckTicket:    a.ticket,
			}.Execute(tr)
		}
		if err != nil {
			_, _ = tpm2.FlushContext{FlushHandle: h}.Execute(tr)
		}
		return err
	}), nil
}

// expected is the selection and values k is used under now: the values
// it is bound to, or those of the authorization in force.
func (t *TPM) expected(k *loadedKey) ([]int, map[int][]byte) {
	if k.authorized() && t.auth != nil {
		return t.auth.pcrs, t.auth.values
	}
	return k.file.PCRs, k.file.PCRValues
}

// ecdsaTPMSignature converts an ASN.1 DER P-256 ECDSA signature to a
// TPMT_SIGNATURE (ECDSA, SHA-256).
func ecdsaTPMSignature(der []byte) (*tpm2.TPMTSignature, error) {
	var rs struct{ R, S *big.Int }
	rest, err := asn1.Unmarshal(der, &rs)
	if err != nil {
		return nil, err
	}
	if len(rest) != 0 || rs.R == nil || rs.S == nil || rs.R.Sign() <= 0 || rs.S.Sign() <= 0 || rs.R.BitLen() > 256 || rs.S.BitLen() > 256 {
		return nil, errors.New("not a P-256 ECDSA signature")
	}
	return &tpm2.TPMTSignature{
		SigAlg: tpm2.TPMAlgECDSA,
		Signature: tpm2.NewTPMUSignature(tpm2.TPMAlgECDSA, &tpm2.TPMSSignatureECC{
			Hash:       tpm2.TPMAlgSHA256,
			SignatureR: tpm2.TPM2BECCParameter{Buffer: rs.R.FillBytes(make([]byte, 32))},
			SignatureS: tpm2.TPM2BECCParameter{Buffer: rs.S.FillBytes(make([]byte, 32))},
		}),
	}, nil
}
