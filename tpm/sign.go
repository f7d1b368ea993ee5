package tpm

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/asn1"
	"errors"
	"fmt"
	"math/big"
	"slices"

	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"
)

// pcrPolicy is a just-in-time policy session that runs PolicyPCR against
// the values k is bound to. The TPM flushes it when the command using it
// completes (continueSession is clear); if PolicyPCR itself fails the
// callback flushes it, so no session outlives a call.
func pcrPolicy(k *loadedKey) tpm2.Session {
	digest := pcrDigest(k.file.PCRs, k.file.PCRValues)
	sel := pcrSelection(k.file.PCRs)
	return tpm2.Policy(tpm2.TPMAlgSHA256, 16, func(tr transport.TPM, h tpm2.TPMISHPolicy, _ tpm2.TPM2BNonce) error {
		_, err := tpm2.PolicyPCR{PolicySession: h, PcrDigest: tpm2.TPM2BDigest{Buffer: digest}, Pcrs: sel}.Execute(tr)
		if err != nil {
			_, _ = tpm2.FlushContext{FlushHandle: h}.Execute(tr)
		}
		return err
	})
}

// policyFailed reports whether err is the TPM refusing a PCR policy.
func policyFailed(err error) bool {
	return errors.Is(err, tpm2.TPMRCValue) || errors.Is(err, tpm2.TPMRCPolicyFail) || errors.Is(err, tpm2.TPMRCPCRChanged)
}

// mismatch builds the PCRMismatchError for k if the PCRs moved, or returns
// cause wrapped when they did not.
func (t *TPM) mismatch(kind string, k *loadedKey, cause error) error {
	pcrs, want := t.expected(k)
	cur, err := t.readPCRs(pcrs)
	if err != nil {
		return &PCRMismatchError{Key: kind, PCRs: slices.Clone(pcrs), Expected: cloneValues(want), Authorized: k.authorized()}
	}
	if bytes.Equal(pcrDigest(pcrs, cur), pcrDigest(pcrs, want)) {
		return fmt.Errorf("tpm: %s key: %w", kind, cause)
	}
	return &PCRMismatchError{Key: kind, PCRs: slices.Clone(pcrs), Expected: cloneValues(want), Current: cur, Authorized: k.authorized()}
}

// ensureSign loads the signing key if it is not loaded.
func (t *TPM) ensureSign() error {
	if t.sign != 0 {
		return nil
	}
	srk, err := t.createPrimary(tpm2.TPMRHOwner, tpm2.ECCSRKTemplate)
	if err != nil {
		return fmt.Errorf("tpm: srk: %w", err)
	}
	h, name, err := t.load(srk, t.signKey)
	ferr := t.flush(srk.handle)
	if err != nil {
		return fmt.Errorf("tpm: load signing key: %w", err)
	}
	t.sign, t.signName = h, name
	return ferr
}

// Sign signs a SHA-256 digest with the PCR-bound signing key and returns an
// ASN.1 DER ECDSA signature. When the PCRs no longer hold the values the
// key is bound to it returns *PCRMismatchError; there is no fallback key.
func (t *TPM) Sign(ctx context.Context, digest []byte) ([]byte, error) {
	if len(digest) != sha256.Size {
		return nil, fmt.Errorf("tpm: sign: digest of %d bytes, want %d", len(digest), sha256.Size)
	}
	if err := t.lock(ctx); err != nil {
		return nil, err
	}
	defer t.unlock()
	if err := t.ensureSign(); err != nil {
		return nil, err
	}
	sess, err := t.policyFor(t.signKey)
	if err != nil {
		return nil, err
	}
	rsp, err := tpm2.Sign{
		KeyHandle:  tpm2.AuthHandle{Handle: t.sign, Name: t.signName, Auth: sess},
		Digest:     tpm2.TPM2BDigest{Buffer: digest},
		InScheme:   ecdsaScheme(),
		Validation: tpm2.TPMTTKHashCheck{Tag: tpm2.TPMSTHashCheck, Hierarchy: tpm2.TPMRHNull},
	}.Execute(t.tr)
	if err != nil {
		if policyFailed(err) {
			return nil, t.mismatch(keyKindSigning, t.signKey, err)
		}
		return nil, fmt.Errorf("tpm: sign: %w", err)
	}
	return signatureDER(&rsp.Signature)
}

// signatureDER converts an ECDSA TPMT_SIGNATURE to ASN.1 DER.
func signatureDER(sig *tpm2.TPMTSignature) ([]byte, error) {
	if sig.SigAlg != tpm2.TPMAlgECDSA {
		return nil, fmt.Errorf("tpm: signature algorithm %v, want ECDSA", sig.SigAlg)
	}
	ec, err := sig.Signature.ECDSA()
	if err != nil {
		return nil, fmt.Errorf("tpm: signature: %w", err)
	}
	der, err := asn1.Marshal(struct{ R, S *big.Int }{
		new(big.Int).SetBytes(ec.SignatureR.Buffer),
		new(big.Int).SetBytes(ec.SignatureS.Buffer),
	})
	if err != nil {
		return nil, fmt.Errorf("tpm: signature: %w", err)
	}
	return der, nil
}

// DataKey unseals the 32-byte data key. It returns *PCRMismatchError when
// the PCRs moved since the key was sealed.
func (t *TPM) DataKey(ctx context.Context) ([]byte, error) {
	if err := t.lock(ctx); err != nil {
		return nil, err
	}
	defer t.unlock()
	// Slots: signing key + SRK + data key; the AK is a primary and is
	// recreated at the next quote.
	if t.ak != 0 {
		if err := t.flush(t.ak); err != nil {
			return nil, err
		}
		t.ak = 0
	}
	sess, err := t.policyFor(t.dataKey)
	if err != nil {
		return nil, err
	}
	srk, err := t.createPrimary(tpm2.TPMRHOwner, tpm2.ECCSRKTemplate)
	if err != nil {
		return nil, fmt.Errorf("tpm: srk: %w", err)
	}
	h, name, err := t.load(srk, t.dataKey)
	ferr := t.flush(srk.handle)
	if err != nil {
		return nil, fmt.Errorf("tpm: load data key: %w", err)
	}
	if ferr != nil {
		_ = t.flush(h)
		return nil, ferr
	}
	rsp, err := tpm2.Unseal{
		ItemHandle: tpm2.AuthHandle{Handle: h, Name: name, Auth: sess},
	}.Execute(t.tr)
	ferr = t.flush(h)
	if err != nil {
		if policyFailed(err) {
			return nil, t.mismatch(keyKindData, t.dataKey, err)
		}
		return nil, fmt.Errorf("tpm: unseal data key: %w", err)
	}
	if ferr != nil {
		return nil, ferr
	}
	if len(rsp.OutData.Buffer) != 32 {
		return nil, fmt.Errorf("tpm: unseal data key: %d bytes, want 32", len(rsp.OutData.Buffer))
	}
	return slices.Clone(rsp.OutData.Buffer), nil
}

// ResealDataKey seals key (32 bytes, typically recovered from the
// operator's recovery wrap after a PCR change) under the current PCR values
// and replaces the saved data key blob; the old blob is kept as
// data-key.json.old.
func (t *TPM) ResealDataKey(ctx context.Context, key []byte) error {
	if len(key) != 32 {
		return fmt.Errorf("tpm: reseal data key: %d bytes, want 32", len(key))
	}
	if err := t.lock(ctx); err != nil {
		return err
	}
	defer t.unlock()
	if t.ak != 0 { // TPM2_Create needs a free slot
		if err := t.flush(t.ak); err != nil {
			return err
		}
		t.ak = 0
	}
	srk, err := t.createPrimary(tpm2.TPMRHOwner, tpm2.ECCSRKTemplate)
	if err != nil {
		return fmt.Errorf("tpm: srk: %w", err)
	}
	k, err := t.boundKey(srk, keyKindData, sealTemplate, key)
	ferr := t.flush(srk.handle)
	if err != nil {
		return err
	}
	if ferr != nil {
		return ferr
	}
	if err := writeJSON(t.stateDir, dataKeyFile+".old", &t.dataKey.file); err != nil {
		return err
	}
	if err := writeJSON(t.stateDir, dataKeyFile, &k.file); err != nil {
		return err
	}
	t.dataKey = k
	t.log.Warn("tpm: data key resealed to the current PCR values", "pcrs", k.file.PCRs)
	return nil
}
