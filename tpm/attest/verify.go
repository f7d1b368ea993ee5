package attest

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"math/big"
	"slices"

	"github.com/google/go-tpm/tpm2"
)

// Attestation types as they appear in TPMS_ATTEST.type.
const (
	TypeCertify = uint16(tpm2.TPMSTAttestCertify)
	TypeQuote   = uint16(tpm2.TPMSTAttestQuote)
)

// ClockInfo is TPMS_CLOCK_INFO.
type ClockInfo struct {
	Clock        uint64 `json:"clock"`
	ResetCount   uint32 `json:"resetCount"`
	RestartCount uint32 `json:"restartCount"`
	Safe         bool   `json:"safe"`
}

// QuoteInfo is what a verified quote tells about the TPM.
type QuoteInfo struct {
	Clock           ClockInfo
	FirmwareVersion uint64
	PCRDigest       []byte
}

// Attest is a decoded TPMS_ATTEST of type certify or quote.
type Attest struct {
	Type            uint16
	QualifiedSigner []byte
	ExtraData       []byte
	Clock           ClockInfo
	FirmwareVersion uint64

	// Certify only.
	CertifiedName, CertifiedQualifiedName []byte
	// Quote only.
	PCRs      []int
	PCRDigest []byte
}

// ParseAttest decodes a marshalled TPMS_ATTEST of type certify or quote.
// A wrong magic is a *MismatchError for "magic"; other types are
// ErrUnsupported.
func ParseAttest(b []byte) (*Attest, error) {
	const s = "TPMS_ATTEST"
	if len(b) < 6 {
		return nil, formatErr(s, "%d bytes", len(b))
	}
	if m := binary.BigEndian.Uint32(b); m != uint32(tpm2.TPMGeneratedValue) {
		return nil, &MismatchError{Field: "magic", Got: fmt.Sprintf("%#08x", m), Want: fmt.Sprintf("%#08x", uint32(tpm2.TPMGeneratedValue))}
	}
	switch t := binary.BigEndian.Uint16(b[4:]); t {
	case TypeCertify, TypeQuote:
	default:
		return nil, fmt.Errorf("%w: attestation type %#04x", ErrUnsupported, t)
	}
	a, err := unmarshalStrict[tpm2.TPMSAttest](s, b)
	if err != nil {
		return nil, err
	}
	out := &Attest{
		Type:            uint16(a.Type),
		QualifiedSigner: bytes.Clone(a.QualifiedSigner.Buffer),
		ExtraData:       bytes.Clone(a.ExtraData.Buffer),
		Clock: ClockInfo{
			Clock:        a.ClockInfo.Clock,
			ResetCount:   a.ClockInfo.ResetCount,
			RestartCount: a.ClockInfo.RestartCount,
			Safe:         bool(a.ClockInfo.Safe),
		},
		FirmwareVersion: a.FirmwareVersion,
	}
	switch out.Type {
	case TypeCertify:
		c, err := a.Attested.Certify()
		if err != nil {
			return nil, &FormatError{Struct: s, Err: err}
		}
		out.CertifiedName = bytes.Clone(c.Name.Buffer)
		out.CertifiedQualifiedName = bytes.Clone(c.QualifiedName.Buffer)
	case TypeQuote:
		q, err := a.Attested.Quote()
		if err != nil {
			return nil, &FormatError{Struct: s, Err: err}
		}
		if out.PCRs, err = selectionPCRs(q.PCRSelect); err != nil {
			return nil, &FormatError{Struct: s, Err: err}
		}
		out.PCRDigest = bytes.Clone(q.PCRDigest.Buffer)
	}
	return out, nil
}

// ParseSignature decodes a marshalled TPMT_SIGNATURE and returns r and s.
// Only ECDSA with SHA-256 is accepted.
func ParseSignature(b []byte) (r, s *big.Int, err error) {
	const name = "TPMT_SIGNATURE"
	sig, err := unmarshalStrict[tpm2.TPMTSignature](name, b)
	if err != nil {
		return nil, nil, err
	}
	if sig.SigAlg != tpm2.TPMAlgECDSA {
		return nil, nil, fmt.Errorf("%w: signature algorithm %#04x", ErrUnsupported, uint16(sig.SigAlg))
	}
	e, err := sig.Signature.ECDSA()
	if err != nil {
		return nil, nil, &FormatError{Struct: name, Err: err}
	}
	if e.Hash != tpm2.TPMAlgSHA256 {
		return nil, nil, fmt.Errorf("%w: signature hash %#04x", ErrUnsupported, uint16(e.Hash))
	}
	return new(big.Int).SetBytes(e.SignatureR.Buffer), new(big.Int).SetBytes(e.SignatureS.Buffer), nil
}

// VerifySignature checks a TPMT_SIGNATURE by key over SHA-256(msg).
func VerifySignature(key *ecdsa.PublicKey, msg, sig []byte, what string) error {
	if key == nil {
		return &SignatureError{What: what, Err: errors.New("no key")}
	}
	r, s, err := ParseSignature(sig)
	if err != nil {
		return &SignatureError{What: what, Err: err}
	}
	sum := sha256.Sum256(msg)
	if !ecdsa.Verify(key, sum[:], r, s) {
		return &SignatureError{What: what}
	}
	return nil
}

// VerifyCertify checks that ak signed attest, a TPM2_Certify of certified:
// the signature, the magic, the type and the certified Name.
func VerifyCertify(ak *Public, attest, sig []byte, certified *Public) error {
	if ak == nil || certified == nil {
		return errors.New("attest: verify certify: nil key")
	}
	if err := VerifySignature(ak.Key, attest, sig, "certify"); err != nil {
		return err
	}
	a, err := ParseAttest(attest)
	if err != nil {
		return err
	}
	if a.Type != TypeCertify {
		return &MismatchError{Field: "type", Got: fmt.Sprintf("%#04x", a.Type), Want: fmt.Sprintf("%#04x", TypeCertify)}
	}
	if !bytes.Equal(a.CertifiedName, certified.Name) {
		return &MismatchError{Field: "certified name", Got: fmt.Sprintf("%x", a.CertifiedName), Want: fmt.Sprintf("%x", certified.Name)}
	}
	return nil
}

// VerifyQuote checks that ak signed attest, a TPM2_Quote over pcrs with
// qualifyingData nonce, and that its pcrDigest is the digest of values.
// Errors name the first field that failed; see the error types.
func VerifyQuote(ak *Public, attest, sig, nonce []byte, pcrs []int, values map[int][]byte) (*QuoteInfo, error) {
	if ak == nil {
		return nil, errors.New("attest: verify quote: nil key")
	}
	if err := VerifySignature(ak.Key, attest, sig, "quote"); err != nil {
		return nil, err
	}
	a, err := ParseAttest(attest)
	if err != nil {
		return nil, err
	}
	if a.Type != TypeQuote {
		return nil, &MismatchError{Field: "type", Got: fmt.Sprintf("%#04x", a.Type), Want: fmt.Sprintf("%#04x", TypeQuote)}
	}
	if !bytes.Equal(a.ExtraData, nonce) {
		return nil, &MismatchError{Field: "nonce", Got: fmt.Sprintf("%x", a.ExtraData), Want: fmt.Sprintf("%x", nonce)}
	}
	if !slices.Equal(a.PCRs, pcrs) {
		return nil, &MismatchError{Field: "pcr selection", Got: fmt.Sprint(a.PCRs), Want: fmt.Sprint(pcrs)}
	}
	want, err := PCRDigest(pcrs, values)
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(a.PCRDigest, want) {
		return nil, &MismatchError{Field: "pcr digest", Got: fmt.Sprintf("%x", a.PCRDigest), Want: fmt.Sprintf("%x", want)}
	}
	return &QuoteInfo{Clock: a.Clock, FirmwareVersion: a.FirmwareVersion, PCRDigest: a.PCRDigest}, nil
}
