package dsse

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/edgeseal/edgeseal/bundle/internal/strict"
	"github.com/edgeseal/edgeseal/bundle/wire"

	"github.com/gowebpki/jcs"
)

// PayloadTypeInToto is the DSSE payload type of an in-toto statement.
const PayloadTypeInToto = "application/vnd.in-toto+json"

// Limits on DSSE envelopes.
const (
	MaxEnvelopeSize  = 4 << 20
	MaxSignatures    = 4
	MaxSignatureSize = 512
)

// Envelope is a DSSE envelope.
type Envelope struct {
	PayloadType string      `json:"payloadType"`
	Payload     []byte      `json:"payload"` // base64 in JSON
	Signatures  []Signature `json:"signatures"`
}

// Signature is one DSSE signature.
type Signature struct {
	KeyID string `json:"keyid"`
	Sig   []byte `json:"sig"` // base64 in JSON
}

// Signer signs the SHA-256 digest of a DSSE PAE, returning an ASN.1 DER
// ECDSA signature. The TPM signing key implements it on the device.
type Signer interface {
	KeyID() string
	Sign(ctx context.Context, digest []byte) ([]byte, error)
}

// PAE is the DSSE v1 pre-authentication encoding of a payload.
func PAE(payloadType string, payload []byte) []byte {
	b := make([]byte, 0, 32+len(payloadType)+len(payload))
	b = append(b, "DSSEv1 "...)
	b = strconv.AppendInt(b, int64(len(payloadType)), 10)
	b = append(b, ' ')
	b = append(b, payloadType...)
	b = append(b, ' ')
	b = strconv.AppendInt(b, int64(len(payload)), 10)
	b = append(b, ' ')
	return append(b, payload...)
}

// SignEnvelope signs payload with s: the signature is over SHA-256(PAE).
func SignEnvelope(ctx context.Context, s Signer, payloadType string, payload []byte) (*Envelope, error) {
	sum := sha256.Sum256(PAE(payloadType, payload))
	sig, err := s.Sign(ctx, sum[:])
	if err != nil {
		return nil, fmt.Errorf("bundle: sign envelope: %w", err)
	}
	return &Envelope{PayloadType: payloadType, Payload: payload, Signatures: []Signature{{KeyID: s.KeyID(), Sig: sig}}}, nil
}

// Marshal returns the canonical JSON of the envelope.
func (e *Envelope) Marshal() ([]byte, error) {
	raw, err := json.Marshal(e)
	if err != nil {
		return nil, fmt.Errorf("bundle: envelope: %w", err)
	}
	return jcs.Transform(raw)
}

// ParseEnvelope reads a DSSE envelope strictly: size limits, 1 to
// MaxSignatures signatures, no unknown fields, canonical JSON.
func ParseEnvelope(b []byte) (*Envelope, error) {
	if len(b) > MaxEnvelopeSize {
		return nil, fmt.Errorf("%w: envelope of %d bytes", wire.ErrTooLarge, len(b))
	}
	var e Envelope
	if err := strict.Unmarshal(b, &e); err != nil {
		return nil, wire.WrapFormat("envelope", "json", err)
	}
	if e.PayloadType == "" || len(e.Payload) == 0 {
		return nil, wire.FormatErr("envelope", "empty payload or type")
	}
	if len(e.Signatures) == 0 || len(e.Signatures) > MaxSignatures {
		return nil, wire.FormatErr("envelope", "%d signatures", len(e.Signatures))
	}
	for _, s := range e.Signatures {
		if s.KeyID == "" || len(s.Sig) == 0 || len(s.Sig) > MaxSignatureSize {
			return nil, wire.FormatErr("envelope", "signature without keyid or of bad size")
		}
	}
	canon, err := e.Marshal()
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(canon, b) {
		return nil, &wire.NotCanonicalError{Format: "envelope", Offset: strict.FirstDiff(canon, b)}
	}
	return &e, nil
}

// VerifyECDSA checks that a signature with keyID verifies under pub as DER
// ECDSA over SHA-256(PAE). Signatures by other key ids are ignored.
func (e *Envelope) VerifyECDSA(keyID string, pub *ecdsa.PublicKey) error {
	sum := sha256.Sum256(PAE(e.PayloadType, e.Payload))
	for _, s := range e.Signatures {
		if s.KeyID == keyID && pub != nil && ecdsa.VerifyASN1(pub, sum[:], s.Sig) {
			return nil
		}
	}
	return &wire.SignatureError{What: "dsse", KeyID: keyID}
}

// VerifyEd25519 checks that a signature with keyID verifies under pub as
// Ed25519 over PAE.
func (e *Envelope) VerifyEd25519(keyID string, pub ed25519.PublicKey) error {
	pae := PAE(e.PayloadType, e.Payload)
	for _, s := range e.Signatures {
		if s.KeyID == keyID && len(pub) == ed25519.PublicKeySize && ed25519.Verify(pub, pae, s.Sig) {
			return nil
		}
	}
	return &wire.SignatureError{What: "dsse", KeyID: keyID}
}

// VerifyAnyEd25519 checks that one of the signatures verifies as Ed25519
// under the key that key returns for its key id. Signatures whose key id
// key refuses are passed over; with none verifying, the error is the last
// one met (a *SignatureError naming "(none)" for an envelope without
// signatures).
func (e *Envelope) VerifyAnyEd25519(key func(keyID string) (ed25519.PublicKey, error)) error {
	var last error = &wire.SignatureError{What: "dsse", KeyID: "(none)"}
	for _, s := range e.Signatures {
		pub, err := key(s.KeyID)
		if err != nil {
			last = err
			continue
		}
		if err := e.VerifyEd25519(s.KeyID, pub); err != nil {
			last = err
			continue
		}
		return nil
	}
	return last
}
