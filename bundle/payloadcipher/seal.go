package payloadcipher

import (
	"crypto/hpke"
	"crypto/sha256"
	"errors"
	"fmt"
	"strings"
)

// InfoPrefix starts the HPKE info of every version 1 payload.
const InfoPrefix = "edgeseal payload v1"

// Info is the HPKE info that binds a ciphertext to its record: InfoPrefix,
// 0x00, the device name, 0x00, and the 32 raw bytes of SHA-256 of the
// record's bound body (the canonical export body with the member
// payloadCipher.digest left out: bundle/custody's ExportBody.Binding).
// A ciphertext moved to another record, device or suite does not open.
func Info(device string, boundBody []byte) []byte {
	sum := sha256.Sum256(boundBody)
	b := make([]byte, 0, len(InfoPrefix)+len(device)+2+len(sum))
	b = append(b, InfoPrefix...)
	b = append(b, 0)
	b = append(b, device...)
	b = append(b, 0)
	return append(b, sum[:]...)
}

// ErrOpen is a ciphertext that does not decrypt: changed, truncated,
// bound to another record, or sealed to another key.
var ErrOpen = errors.New("payloadcipher: the ciphertext does not open: changed, truncated, bound to another record or sealed to another key")

// FormatError is a ciphertext file that cannot be one of its suite.
type FormatError struct{ Reason string }

func (e *FormatError) Error() string { return "payloadcipher: ciphertext: " + e.Reason }

// Split reads a ciphertext file of suite s strictly: the encapsulated key
// (EncSize bytes) and the AEAD ciphertext (at least TagSize bytes, at
// most MaxPlaintext+TagSize). An unknown suite is a *SuiteError.
func Split(s Suite, file []byte) (enc, ct []byte, err error) {
	if !s.Known() {
		return nil, nil, &SuiteError{Suite: s}
	}
	switch {
	case len(file) < EncSize+TagSize:
		return nil, nil, &FormatError{Reason: fmt.Sprintf("%d bytes, shorter than the encapsulated key and tag (%d)", len(file), EncSize+TagSize)}
	case len(file) > EncSize+TagSize+MaxPlaintext:
		return nil, nil, &FormatError{Reason: fmt.Sprintf("%d bytes, more than %d", len(file), EncSize+TagSize+MaxPlaintext)}
	}
	return file[:EncSize:EncSize], file[EncSize:], nil
}

// Seal encrypts plaintext to pub as version 1 (one encapsulation for
// this payload alone) under info (Info) with Default and returns the
// ciphertext file and the record's Cipher member. Agents seal version 2
// (Sealer); Seal stays for vectors and tests of version 1 records.
func Seal(pub *PublicKey, info, plaintext []byte) ([]byte, Cipher, error) {
	if len(plaintext) > MaxPlaintext {
		return nil, Cipher{}, fmt.Errorf("payloadcipher: seal: %d bytes, at most %d", len(plaintext), MaxPlaintext)
	}
	_, kdf, aead, err := Default.parts()
	if err != nil {
		return nil, Cipher{}, err
	}
	file, err := hpke.Seal(pub.HPKE(), kdf, aead, info, plaintext)
	if err != nil {
		return nil, Cipher{}, fmt.Errorf("payloadcipher: seal: %w", err)
	}
	return file, Cipher{KEM: int(Default.KEM), KDF: int(Default.KDF), AEAD: int(Default.AEAD), KeyID: pub.ID, Digest: Digest(file)}, nil
}

// WrongKeyError is a ciphertext sealed to another content key than the
// private key given.
type WrongKeyError struct{ Want, Got string }

func (e *WrongKeyError) Error() string {
	return fmt.Sprintf("payloadcipher: sealed to content key %s, not %s", e.Want, e.Got)
}

// DigestError is a ciphertext file whose SHA-256 is not the digest its
// record names (changed, truncated or swapped in transit).
type DigestError struct{ Want, Got string }

func (e *DigestError) Error() string {
	return fmt.Sprintf("payloadcipher: ciphertext of sha256 %s, the record names %s", strings.TrimPrefix(e.Got, "sha256:"), strings.TrimPrefix(e.Want, "sha256:"))
}

// CheckFile checks, without any key, that file is the ciphertext c
// names: a known suite (*SuiteError), its digest (*DigestError), its
// form (*FormatError).
func CheckFile(c *Cipher, file []byte) error {
	if err := c.Check(); err != nil {
		return err
	}
	if got := Digest(file); got != c.Digest {
		return &DigestError{Want: c.Digest, Got: got}
	}
	_, _, err := Split(c.Suite(), file)
	return err
}

// Open checks file against c (CheckFile), a version 1 Cipher, and
// decrypts it with priv under info: a *VersionError when c names
// another version (OpenRecord opens every version), a *WrongKeyError
// when c names another key, ErrOpen when it does not decrypt.
func Open(priv *PrivateKey, c *Cipher, info, file []byte) ([]byte, error) {
	if err := CheckFile(c, file); err != nil {
		return nil, err
	}
	if c.Version() != V1 {
		return nil, &VersionError{V: c.Version()}
	}
	if c.KeyID != priv.ID {
		return nil, &WrongKeyError{Want: c.KeyID, Got: priv.ID}
	}
	_, kdf, aead, err := c.Suite().parts()
	if err != nil {
		return nil, err
	}
	pt, err := hpke.Open(priv.HPKE(), kdf, aead, info, file)
	if err != nil {
		return nil, ErrOpen
	}
	return pt, nil
}
