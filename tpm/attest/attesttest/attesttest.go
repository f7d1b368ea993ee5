// Package attesttest is a software stand-in for a TPM that produces
// byte-identical TPM structures (TPMT_PUBLIC, TPMS_ATTEST, TPMT_SIGNATURE,
// the tpm2_checkquote PCR file) from ECDSA keys held in memory. Tests use it
// to build valid and precisely tampered attestations without a TPM. It is
// not secure and never meant for production.
package attesttest

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"maps"
	"slices"

	"github.com/google/go-tpm/tpm2"

	"github.com/edgeseal/edgeseal/tpm/attest"
)

// TPM is a software TPM. Its exported fields may be set freely by tests to
// shape the next quote (clock, counters, PCR values).
type TPM struct {
	EK, AK, SigningKey *ecdsa.PrivateKey

	PCRs   []int          // selection used by Quote and the signing key policy
	Values map[int][]byte // current PCR values (SHA-256 bank)
	Bound  map[int][]byte // values the signing key's authPolicy was computed from

	Clock        uint64
	ResetCount   uint32
	RestartCount uint32
	Safe         bool
	Firmware     uint64
	Counter      uint64 // NV counter
	// ClockStep is added to Clock before each quote and certify (ms).
	ClockStep uint64

	// SignWhenMoved makes Sign succeed even when Values differ from Bound
	// (a real TPM refuses; tests of a lying host may want it).
	SignWhenMoved bool

	// AuthPolicy, when set, is the signing key's authPolicy instead of
	// PolicyPCR over Bound (a key bound with TPM2_PolicyAuthorize to a
	// PCR-policy key; Bound are then the values authorized now).
	AuthPolicy []byte
}

// New returns a software TPM with fresh keys, PCRs 0,2,4,7 holding
// SHA-256("pcr N") and the signing key bound to those values.
func New() (*TPM, error) {
	t := &TPM{PCRs: []int{0, 2, 4, 7}, Values: map[int][]byte{}, Clock: 100000, ResetCount: 3, RestartCount: 1, Safe: true, Firmware: 0x2024_0001, ClockStep: 1000}
	for _, p := range t.PCRs {
		sum := sha256.Sum256(fmt.Appendf(nil, "pcr %d", p))
		t.Values[p] = sum[:]
	}
	t.Bound = maps.Clone(t.Values)
	var err error
	for _, k := range []**ecdsa.PrivateKey{&t.EK, &t.AK, &t.SigningKey} {
		if *k, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
			return nil, fmt.Errorf("attesttest: %w", err)
		}
	}
	return t, nil
}

// Attributes selects TPMA_OBJECT bits for PublicArea.
type Attributes struct {
	FixedTPM, FixedParent, SensitiveDataOrigin bool
	UserWithAuth, AdminWithPolicy              bool
	Restricted, SignEncrypt, Decrypt           bool
}

// AKAttributes are those of a restricted attestation key.
var AKAttributes = Attributes{FixedTPM: true, FixedParent: true, SensitiveDataOrigin: true, UserWithAuth: true, Restricted: true, SignEncrypt: true}

// SigningAttributes are those of the PCR-policy signing key (the tpm package doc).
var SigningAttributes = Attributes{FixedTPM: true, FixedParent: true, SensitiveDataOrigin: true, AdminWithPolicy: true, SignEncrypt: true}

// PublicArea marshals the TPMT_PUBLIC of an ECC P-256 ECDSA-SHA256 key.
func PublicArea(key *ecdsa.PublicKey, a Attributes, authPolicy []byte) []byte {
	raw, err := key.Bytes()
	if err != nil {
		panic(fmt.Sprintf("attesttest: %v", err))
	}
	pub := tpm2.TPMTPublic{
		Type:    tpm2.TPMAlgECC,
		NameAlg: tpm2.TPMAlgSHA256,
		ObjectAttributes: tpm2.TPMAObject{
			FixedTPM: a.FixedTPM, FixedParent: a.FixedParent, SensitiveDataOrigin: a.SensitiveDataOrigin,
			UserWithAuth: a.UserWithAuth, AdminWithPolicy: a.AdminWithPolicy,
			Restricted: a.Restricted, SignEncrypt: a.SignEncrypt, Decrypt: a.Decrypt,
		},
		AuthPolicy: tpm2.TPM2BDigest{Buffer: authPolicy},
		Parameters: attest.ECDSAP256Parms(),
		Unique:     attest.ECCUnique(raw[1:33], raw[33:]),
	}
	return tpm2.Marshal(pub)
}

// AKPublic is the AK's TPMT_PUBLIC.
func (t *TPM) AKPublic() []byte { return PublicArea(&t.AK.PublicKey, AKAttributes, nil) }

// SigningPublic is the signing key's TPMT_PUBLIC, authPolicy bound to Bound.
func (t *TPM) SigningPublic() []byte {
	return PublicArea(&t.SigningKey.PublicKey, SigningAttributes, t.PolicyDigest())
}

// PolicyDigest is the signing key's authPolicy: AuthPolicy if set, else
// the PolicyPCR digest over PCRs and Bound.
func (t *TPM) PolicyDigest() []byte {
	if t.AuthPolicy != nil {
		return t.AuthPolicy
	}
	d, err := attest.PolicyPCRDigest(t.PCRs, t.Bound)
	if err != nil {
		panic(fmt.Sprintf("attesttest: %v", err))
	}
	return d
}

// EKPublic is the EK public key as PKIX DER.
func (t *TPM) EKPublic() []byte {
	der, err := x509.MarshalPKIXPublicKey(&t.EK.PublicKey)
	if err != nil {
		panic(fmt.Sprintf("attesttest: %v", err))
	}
	return der
}

// AKPEM is the AK public key as a PEM "PUBLIC KEY" block, as
// tpm2_checkquote -u reads it.
func (t *TPM) AKPEM() []byte {
	der, err := x509.MarshalPKIXPublicKey(&t.AK.PublicKey)
	if err != nil {
		panic(fmt.Sprintf("attesttest: %v", err))
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

// KeyID is "sha256:<hex>" of the signing key's public area.
func (t *TPM) KeyID() string {
	sum := sha256.Sum256(t.SigningPublic())
	return "sha256:" + hex.EncodeToString(sum[:])
}

// Sign signs digest with the signing key (ASN.1 DER), refusing like a TPM
// when the PCRs moved away from the bound values.
func (t *TPM) Sign(ctx context.Context, digest []byte) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if !t.SignWhenMoved && !maps.EqualFunc(t.Values, t.Bound, slices.Equal) {
		return nil, fmt.Errorf("attesttest: pcrs moved, policy check failed")
	}
	return ecdsa.SignASN1(rand.Reader, t.SigningKey, digest)
}

// Extend extends PCR pcr with SHA-256(data) like TPM2_PCR_Extend.
func (t *TPM) Extend(pcr int, data []byte) {
	d := sha256.Sum256(data)
	h := sha256.New()
	h.Write(t.Values[pcr])
	h.Write(d[:])
	t.Values[pcr] = h.Sum(nil)
}

// IncrementCounter bumps and returns the NV counter.
func (t *TPM) IncrementCounter() uint64 { t.Counter++; return t.Counter }

// Certify returns the AK's TPM2_Certify of the public area certified.
func (t *TPM) Certify(certified []byte) (attestBytes, sig []byte) {
	info := tpm2.NewTPMUAttest(tpm2.TPMSTAttestCertify, &tpm2.TPMSCertifyInfo{
		Name:          tpm2.TPM2BName{Buffer: attest.Name(certified)},
		QualifiedName: tpm2.TPM2BName{Buffer: attest.Name(certified)},
	})
	return t.sign(t.AK, t.attest(tpm2.TPMSTAttestCertify, nil, info))
}

// Quote quotes t.PCRs at their current values with the nonce.
func (t *TPM) Quote(nonce []byte) (attestBytes, sig []byte) {
	return t.QuoteOf(nonce, t.PCRs, t.Values)
}

// QuoteOf quotes an arbitrary selection and values with the nonce.
func (t *TPM) QuoteOf(nonce []byte, pcrs []int, values map[int][]byte) (attestBytes, sig []byte) {
	sel, err := attest.MarshalPCRSelection(pcrs)
	if err != nil {
		panic(fmt.Sprintf("attesttest: %v", err))
	}
	lsel, err := tpm2.Unmarshal[tpm2.TPMLPCRSelection](sel)
	if err != nil {
		panic(fmt.Sprintf("attesttest: %v", err))
	}
	digest, err := attest.PCRDigest(pcrs, values)
	if err != nil {
		panic(fmt.Sprintf("attesttest: %v", err))
	}
	info := tpm2.NewTPMUAttest(tpm2.TPMSTAttestQuote, &tpm2.TPMSQuoteInfo{
		PCRSelect: *lsel,
		PCRDigest: tpm2.TPM2BDigest{Buffer: digest},
	})
	return t.sign(t.AK, t.attest(tpm2.TPMSTAttestQuote, nonce, info))
}

// PCRsFile is the tpm2_checkquote -f file for t.PCRs and t.Values.
func (t *TPM) PCRsFile() []byte {
	b, err := attest.MarshalPCRsFile(t.PCRs, t.Values)
	if err != nil {
		panic(fmt.Sprintf("attesttest: %v", err))
	}
	return b
}

func (t *TPM) attest(typ tpm2.TPMST, extra []byte, info tpm2.TPMUAttest) []byte {
	t.Clock += t.ClockStep
	return tpm2.Marshal(tpm2.TPMSAttest{
		Magic:           tpm2.TPMGeneratedValue,
		Type:            typ,
		QualifiedSigner: tpm2.TPM2BName{Buffer: attest.Name(t.AKPublic())},
		ExtraData:       tpm2.TPM2BData{Buffer: extra},
		ClockInfo: tpm2.TPMSClockInfo{
			Clock: t.Clock, ResetCount: t.ResetCount, RestartCount: t.RestartCount, Safe: tpm2.TPMIYesNo(t.Safe),
		},
		FirmwareVersion: t.Firmware,
		Attested:        info,
	})
}

// SignAttest signs msg with key the way a TPM signs an attestation and
// returns the marshalled TPMT_SIGNATURE.
func SignAttest(key *ecdsa.PrivateKey, msg []byte) []byte {
	sum := sha256.Sum256(msg)
	r, s, err := ecdsa.Sign(rand.Reader, key, sum[:])
	if err != nil {
		panic(fmt.Sprintf("attesttest: %v", err))
	}
	return tpm2.Marshal(tpm2.TPMTSignature{
		SigAlg: tpm2.TPMAlgECDSA,
		Signature: tpm2.NewTPMUSignature(tpm2.TPMAlgECDSA, &tpm2.TPMSSignatureECC{
			Hash:       tpm2.TPMAlgSHA256,
			SignatureR: tpm2.TPM2BECCParameter{Buffer: r.FillBytes(make([]byte, 32))},
			SignatureS: tpm2.TPM2BECCParameter{Buffer: s.FillBytes(make([]byte, 32))},
		}),
	})
}

func (t *TPM) sign(key *ecdsa.PrivateKey, msg []byte) ([]byte, []byte) {
	return msg, SignAttest(key, msg)
}
