package custody

import (
	"fmt"

	"github.com/edgeseal/edgeseal/bundle/payloadcipher"
)

// The suite ids Encrypt writes: Default's, so Binding can be computed
// before the ciphertext exists.
var defaultSuite = payloadcipher.Default

// EncryptPayload seals plaintext to pub as payload cipher version 2 in
// the current window of s, for the export record of device whose body is
// e (Payload already naming the plaintext), sets e.PayloadCipher and
// returns the ciphertext file. The exporter context binds the ciphertext
// to device and to e (Binding, which names the version), so it opens
// for this record only.
func EncryptPayload(e *ExportBody, device string, s *payloadcipher.Sealer, pub *payloadcipher.PublicKey, plaintext []byte) ([]byte, error) {
	return encrypt(e, payloadcipher.V2, pub, func(bound []byte) ([]byte, payloadcipher.Cipher, error) {
		return s.Seal(pub, payloadcipher.ExporterContext(device, bound), plaintext)
	})
}

// EncryptPayloadV1 is EncryptPayload with payload cipher version 1 (one
// HPKE encapsulation for this payload, the info binding it), for tests
// and vectors of the records agents wrote before version 2.
func EncryptPayloadV1(e *ExportBody, device string, pub *payloadcipher.PublicKey, plaintext []byte) ([]byte, error) {
	return encrypt(e, payloadcipher.V1, pub, func(bound []byte) ([]byte, payloadcipher.Cipher, error) {
		return payloadcipher.Seal(pub, payloadcipher.Info(device, bound), plaintext)
	})
}

func encrypt(e *ExportBody, v int, pub *payloadcipher.PublicKey, seal func(bound []byte) ([]byte, payloadcipher.Cipher, error)) ([]byte, error) {
	e.PayloadCipher = &payloadcipher.Cipher{KEM: int(defaultSuite.KEM), KDF: int(defaultSuite.KDF), AEAD: int(defaultSuite.AEAD), KeyID: pub.ID}
	if v != payloadcipher.V1 {
		e.PayloadCipher.V = v
	}
	bound, err := e.Binding()
	if err != nil {
		e.PayloadCipher = nil
		return nil, fmt.Errorf("custody: encrypt payload: %w", err)
	}
	file, c, err := seal(bound)
	if err != nil {
		e.PayloadCipher = nil
		return nil, err
	}
	e.PayloadCipher = &c
	return file, nil
}

// DecryptPayload opens the ciphertext file of the export record r with
// priv, by the payload cipher version the record names: the info
// (version 1) or exporter context (version 2) is rebuilt from r's device
// and body, a version 2 window's context taken from o (nil: decapsulated
// afresh), and the plaintext must have the digest and size the record
// names. Errors: those of payloadcipher.OpenRecord
// (*payloadcipher.SuiteError, *VersionError, *DigestError, *FormatError,
// *WrongKeyError, ErrOpen), and a *PlaintextError when the plaintext is
// not the one the record names.
func DecryptPayload(r *Record, priv *payloadcipher.PrivateKey, file []byte, o *payloadcipher.Opener) ([]byte, error) {
	e, err := r.ExportBody()
	if err != nil {
		return nil, err
	}
	if e.PayloadCipher == nil {
		return nil, fmt.Errorf("custody: decrypt payload: export %s is not encrypted", e.ExportID)
	}
	bound, err := e.Binding()
	if err != nil {
		return nil, err
	}
	pt, err := payloadcipher.OpenRecord(priv, e.PayloadCipher, r.Device, bound, file, o)
	if err != nil {
		return nil, err
	}
	if d := payloadcipher.Digest(pt); d != e.Payload.Digest || int64(len(pt)) != e.Payload.Size {
		return nil, &PlaintextError{ExportID: e.ExportID, Want: e.Payload.Digest, Got: d}
	}
	return pt, nil
}

// PlaintextError is a ciphertext that opens to another plaintext than its
// record names (a device that encrypted other bytes than it recorded).
type PlaintextError struct{ ExportID, Want, Got string }

func (e *PlaintextError) Error() string {
	return fmt.Sprintf("custody: export %s decrypts to %s, the record names %s", e.ExportID, e.Got, e.Want)
}
