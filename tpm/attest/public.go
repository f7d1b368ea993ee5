package attest

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
	"encoding/binary"
	"fmt"

	"github.com/google/go-tpm/tpm2"
)

// MaxStructSize bounds every TPM structure this package decodes. TPM2B
// buffers are capped by the TPM's own MAX_*_BUFFER far below this.
const MaxStructSize = 4096

// Public is a parsed ECC P-256 public area (TPMT_PUBLIC).
type Public struct {
	Key  *ecdsa.PublicKey
	Name []byte // nameAlg (0x000B) || SHA-256(TPMT_PUBLIC bytes)

	FixedTPM, FixedParent, SensitiveDataOrigin bool
	Restricted, SignEncrypt, Decrypt           bool
	UserWithAuth, AdminWithPolicy              bool
	AuthPolicy                                 []byte
}

// Name computes the TPM Name of a marshalled public area with nameAlg
// SHA-256: 0x000B || SHA-256(area).
func Name(area []byte) []byte {
	sum := sha256.Sum256(area)
	out := make([]byte, 2, 2+len(sum))
	binary.BigEndian.PutUint16(out, uint16(tpm2.TPMAlgSHA256))
	return append(out, sum[:]...)
}

// ParsePublic decodes a marshalled TPMT_PUBLIC. It accepts only ECC P-256
// keys with nameAlg SHA-256 and a NULL or ECDSA-SHA256 scheme, and rejects
// trailing or non-canonical bytes.
func ParsePublic(b []byte) (*Public, error) {
	const s = "TPMT_PUBLIC"
	pub, err := unmarshalStrict[tpm2.TPMTPublic](s, b)
	if err != nil {
		return nil, err
	}
	if pub.Type != tpm2.TPMAlgECC {
		return nil, fmt.Errorf("%w: key type %#04x", ErrUnsupported, uint16(pub.Type))
	}
	if pub.NameAlg != tpm2.TPMAlgSHA256 {
		return nil, fmt.Errorf("%w: name algorithm %#04x", ErrUnsupported, uint16(pub.NameAlg))
	}
	parms, err := pub.Parameters.ECCDetail()
	if err != nil {
		return nil, &FormatError{Struct: s, Err: err}
	}
	if parms.CurveID != tpm2.TPMECCNistP256 {
		return nil, fmt.Errorf("%w: curve %#04x", ErrUnsupported, uint16(parms.CurveID))
	}
	switch parms.Scheme.Scheme {
	case tpm2.TPMAlgNull:
	case tpm2.TPMAlgECDSA:
		d, err := parms.Scheme.Details.ECDSA()
		if err != nil {
			return nil, &FormatError{Struct: s, Err: err}
		}
		if d.HashAlg != tpm2.TPMAlgSHA256 {
			return nil, fmt.Errorf("%w: scheme hash %#04x", ErrUnsupported, uint16(d.HashAlg))
		}
	default:
		return nil, fmt.Errorf("%w: scheme %#04x", ErrUnsupported, uint16(parms.Scheme.Scheme))
	}
	if parms.KDF.Scheme != tpm2.TPMAlgNull {
		return nil, fmt.Errorf("%w: kdf %#04x", ErrUnsupported, uint16(parms.KDF.Scheme))
	}
	point, err := pub.Unique.ECC()
	if err != nil {
		return nil, &FormatError{Struct: s, Err: err}
	}
	key, err := eccKey(point.X.Buffer, point.Y.Buffer)
	if err != nil {
		return nil, &FormatError{Struct: s, Err: err}
	}
	a := pub.ObjectAttributes
	return &Public{
		Key:                 key,
		Name:                Name(b),
		FixedTPM:            a.FixedTPM,
		FixedParent:         a.FixedParent,
		SensitiveDataOrigin: a.SensitiveDataOrigin,
		Restricted:          a.Restricted,
		SignEncrypt:         a.SignEncrypt,
		Decrypt:             a.Decrypt,
		UserWithAuth:        a.UserWithAuth,
		AdminWithPolicy:     a.AdminWithPolicy,
		AuthPolicy:          bytes.Clone(pub.AuthPolicy.Buffer),
	}, nil
}

// eccKey builds a P-256 key from TPM coordinates, checking the point is on
// the curve.
func eccKey(x, y []byte) (*ecdsa.PublicKey, error) {
	if len(x) > 32 || len(y) > 32 {
		return nil, fmt.Errorf("coordinate longer than 32 bytes")
	}
	raw := make([]byte, 65)
	raw[0] = 4
	copy(raw[1+32-len(x):33], x)
	copy(raw[33+32-len(y):], y)
	key, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), raw)
	if err != nil {
		return nil, fmt.Errorf("point: %w", err)
	}
	return key, nil
}

// unmarshalStrict decodes b as T and requires that re-encoding gives b back,
// which rules out trailing bytes and any slack in the encoding. go-tpm's
// reflection decoder is guarded against panics on hostile input.
func unmarshalStrict[T tpm2.Marshallable, P interface {
	*T
	tpm2.Unmarshallable
}](name string, b []byte) (v *T, err error) {
	if len(b) > MaxStructSize {
		return nil, formatErr(name, "%d bytes exceeds %d", len(b), MaxStructSize)
	}
	defer func() {
		if r := recover(); r != nil {
			v, err = nil, formatErr(name, "decoder panic: %v", r)
		}
	}()
	t, err := tpm2.Unmarshal[T, P](b)
	if err != nil {
		return nil, &FormatError{Struct: name, Err: err}
	}
	if !bytes.Equal(tpm2.Marshal(*t), b) {
		return nil, formatErr(name, "trailing or non-canonical bytes")
	}
	return t, nil
}
