package custody

import (
	"fmt"

	"github.com/edgeseal/edgeseal/bundle/payloadcipher"
)

// The suite ids Encrypt writes: Default's, so Binding can be computed
// before the ciphertext exists.
var defaultSuite = payloadcipher.Default

// EncryptPayload seals plaintext to pub for the export record of device
// whose body is e (Payload already naming the plaintext), sets
// e.PayloadCipher and returns the ciphertext file. The HPKE info binds the
// ciphertext to device and to e (Binding), so it opens for this record only.
func EncryptPayload(e *ExportBody, device string, pub *payloadcipher.PublicKey, plaintext []byte) ([]byte, error) {
	e.PayloadCipher = &payloadcipher.Cipher{KEM: int(defaultSuite.KEM), KDF: int(defaultSuite.KDF), AEAD: int(defaultSuite.AEAD), KeyID: pub.ID}
	bound, err := e.Binding()
	if err != nil {
		e.PayloadCipher = nil
		return nil, fmt.Errorf("custody: encrypt payload: %w", err)
	}
	file, c, err := payloadcipher.Seal(pub, payloadcipher.Info(device, bound), plaintext)
	if err != nil {
		e.PayloadCipher = nil
		return nil, err
	}
	e.PayloadCipher = &c
	return file, nil
}

// DecryptPayload opens the ciphertext file of the export record r with
// priv: the info is rebuilt from r's device and body, and the plaintext
// must have the digest and size the record names. Errors: those of
// payloadcipher.Open (*payloadcipher.SuiteError, *DigestError,
// *FormatError, *WrongKeyError, ErrOpen), and a *PlaintextError when the
// plaintext is not the one the record names.
func DecryptPayload(r *Record, priv *payloadcipher.PrivateKey, file []byte) ([]byte, error) {
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
	pt, err := payloadcipher.Open(priv, e.PayloadCipher, payloadcipher.Info(r.Device, bound), file)
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
