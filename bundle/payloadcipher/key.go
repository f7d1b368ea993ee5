package payloadcipher

import (
	"bytes"
	"crypto/hpke"
	"encoding/pem"
	"fmt"
)

// SuiteName names the HPKE ciphersuite of every key file of this version.
const SuiteName = "MLKEM768X25519/HKDF-SHA256/AES-256-GCM"

// KeyVersion is the version header of the key files.
const KeyVersion = "1"

// PEM block types of the key files.
const (
	PrivateKeyType = "EDGESEAL CONTENT PRIVATE KEY"
	PublicKeyType  = "EDGESEAL CONTENT PUBLIC KEY"
)

// maxKeyFile bounds a key file.
const maxKeyFile = 8 << 10

func kem() hpke.KEM { return hpke.MLKEM768X25519() }

// PublicKey is an archive's content public key.
type PublicKey struct {
	ID string
	k  hpke.PublicKey
}

// PrivateKey is an archive's content private key. It stays with the archive (and its escrow).
type PrivateKey struct {
	ID string
	k  hpke.PrivateKey
}

// GenerateKey makes a new content key pair.
func GenerateKey() (*PrivateKey, error) {
	k, err := kem().GenerateKey()
	if err != nil {
		return nil, fmt.Errorf("payloadcipher: generate key: %w", err)
	}
	return &PrivateKey{ID: KeyID(k.PublicKey().Bytes()), k: k}, nil
}

// NewPrivateKey deserializes a private key (RFC 9180 DeserializePrivateKey).
func NewPrivateKey(b []byte) (*PrivateKey, error) {
	k, err := kem().NewPrivateKey(b)
	if err != nil {
		return nil, &KeyError{What: "private key", Reason: "not an " + SuiteName + " private key", Err: err}
	}
	return &PrivateKey{ID: KeyID(k.PublicKey().Bytes()), k: k}, nil
}

// Public returns the public half.
func (k *PrivateKey) Public() *PublicKey {
	return &PublicKey{ID: k.ID, k: k.k.PublicKey()}
}

// MarshalPEM writes the private key file: a PEM block with the version,
// the suite and the key id as headers.
func (k *PrivateKey) MarshalPEM() ([]byte, error) {
	b, err := k.k.Bytes()
	if err != nil {
		return nil, fmt.Errorf("payloadcipher: private key: %w", err)
	}
	return encodePEM(PrivateKeyType, k.ID, b), nil
}

// MarshalPEM writes the public key file.
func (k *PublicKey) MarshalPEM() []byte {
	return encodePEM(PublicKeyType, k.ID, k.k.Bytes())
}

func encodePEM(typ, id string, b []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Headers: map[string]string{
		"Version": KeyVersion, "Suite": SuiteName, "Key-Id": id,
	}, Bytes: b})
}

// ParsePrivateKey reads a private key file strictly: one PEM block of type
// PrivateKeyType with exactly the headers Version, Suite and Key-Id, the
// key id matching the key, nothing after the block.
func ParsePrivateKey(b []byte) (*PrivateKey, error) {
	blk, err := decodePEM(b, PrivateKeyType)
	if err != nil {
		return nil, err
	}
	k, err := NewPrivateKey(blk.Bytes)
	if err != nil {
		return nil, err
	}
	if k.ID != blk.Headers["Key-Id"] {
		return nil, &KeyError{What: "private key", Reason: fmt.Sprintf("Key-Id header %.80q is not the key's id %s", blk.Headers["Key-Id"], k.ID)}
	}
	return k, nil
}

// ParsePublicKey reads a public key file strictly (as ParsePrivateKey).
func ParsePublicKey(b []byte) (*PublicKey, error) {
	blk, err := decodePEM(b, PublicKeyType)
	if err != nil {
		return nil, err
	}
	pk, err := kem().NewPublicKey(blk.Bytes)
	if err != nil {
		return nil, &KeyError{What: "public key", Reason: "not an " + SuiteName + " public key", Err: err}
	}
	id := KeyID(pk.Bytes())
	if id != blk.Headers["Key-Id"] {
		return nil, &KeyError{What: "public key", Reason: fmt.Sprintf("Key-Id header %.80q is not the key's id %s", blk.Headers["Key-Id"], id)}
	}
	return &PublicKey{ID: id, k: pk}, nil
}

func decodePEM(b []byte, typ string) (*pem.Block, error) {
	what := "public key"
	if typ == PrivateKeyType {
		what = "private key"
	}
	bad := func(format string, args ...any) error {
		return &KeyError{What: what, Reason: fmt.Sprintf(format, args...)}
	}
	if len(b) > maxKeyFile {
		return nil, bad("file of %d bytes, at most %d", len(b), maxKeyFile)
	}
	blk, rest := pem.Decode(b)
	if blk == nil {
		return nil, bad("no PEM block")
	}
	if len(bytes.TrimSpace(rest)) != 0 {
		return nil, bad("data after the PEM block")
	}
	if blk.Type != typ {
		return nil, bad("PEM type %.60q, want %q", blk.Type, typ)
	}
	if len(blk.Headers) != 3 {
		return nil, bad("%d PEM headers, want Version, Suite and Key-Id", len(blk.Headers))
	}
	if v, ok := blk.Headers["Version"]; !ok || v != KeyVersion {
		return nil, bad("Version %.20q, want %s", v, KeyVersion)
	}
	if s, ok := blk.Headers["Suite"]; !ok || s != SuiteName {
		return nil, bad("Suite %.80q, want %s", s, SuiteName)
	}
	if _, ok := blk.Headers["Key-Id"]; !ok {
		return nil, bad("no Key-Id header")
	}
	return blk, nil
}

// NewPublicKey deserializes a public key (RFC 9180 DeserializePublicKey).
func NewPublicKey(b []byte) (*PublicKey, error) {
	pk, err := kem().NewPublicKey(b)
	if err != nil {
		return nil, &KeyError{What: "public key", Reason: "not an " + SuiteName + " public key", Err: err}
	}
	return &PublicKey{ID: KeyID(pk.Bytes()), k: pk}, nil
}

// Bytes is the serialized public key (RFC 9180 SerializePublicKey).
func (k *PublicKey) Bytes() []byte { return k.k.Bytes() }

// DeriveKey derives a key pair from ikm (RFC 9180 DeriveKeyPair), for
// test vectors.
func DeriveKey(ikm []byte) (*PrivateKey, error) {
	k, err := kem().DeriveKeyPair(ikm)
	if err != nil {
		return nil, fmt.Errorf("payloadcipher: derive key: %w", err)
	}
	return &PrivateKey{ID: KeyID(k.PublicKey().Bytes()), k: k}, nil
}

// KeyError is a key file or key that is malformed.
type KeyError struct {
	What, Reason string
	Err          error
}

func (e *KeyError) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("payloadcipher: %s: %s: %v", e.What, e.Reason, e.Err)
	}
	return fmt.Sprintf("payloadcipher: %s: %s", e.What, e.Reason)
}

func (e *KeyError) Unwrap() error { return e.Err }

// Bytes is the serialized private key (RFC 9180 SerializePrivateKey: the
// 32-byte seed for this suite), for an escrow.
func (k *PrivateKey) Bytes() ([]byte, error) { return k.k.Bytes() }
