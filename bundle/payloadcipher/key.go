package payloadcipher

import (
	"crypto/hpke"
	"fmt"

	"github.com/edgeseal/edgeseal/internal/hpkekey"
)

// SuiteName names the HPKE ciphersuite of every key file of this version.
const SuiteName = hpkekey.Suite

// KeyVersion is the version header of the key files.
const KeyVersion = hpkekey.Version

// PEM block types of the key files.
const (
	PrivateKeyType = "EDGESEAL CONTENT PRIVATE KEY"
	PublicKeyType  = "EDGESEAL CONTENT PUBLIC KEY"
)

// keyFormat is the shared key-file format with this package's PEM types
// and KeyError.
var keyFormat = hpkekey.Format{PrivateType: PrivateKeyType, PublicType: PublicKeyType,
	Err: func(what, reason string, err error) error { return &KeyError{What: what, Reason: reason, Err: err} }}

func kem() hpke.KEM { return hpkekey.KEM() }

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
	k, id, err := keyFormat.NewPrivate(b)
	if err != nil {
		return nil, err
	}
	return &PrivateKey{ID: id, k: k}, nil
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

func encodePEM(typ, id string, b []byte) []byte { return keyFormat.Encode(typ, id, b) }

// ParsePrivateKey reads a private key file strictly: one PEM block of type
// PrivateKeyType with exactly the headers Version, Suite and Key-Id, the
// key id matching the key, nothing after the block.
func ParsePrivateKey(b []byte) (*PrivateKey, error) {
	k, id, err := keyFormat.ParsePrivate(b)
	if err != nil {
		return nil, err
	}
	return &PrivateKey{ID: id, k: k}, nil
}

// ParsePublicKey reads a public key file strictly (as ParsePrivateKey).
func ParsePublicKey(b []byte) (*PublicKey, error) {
	pk, id, err := keyFormat.ParsePublic(b)
	if err != nil {
		return nil, err
	}
	return &PublicKey{ID: id, k: pk}, nil
}

// NewPublicKey deserializes a public key (RFC 9180 DeserializePublicKey).
func NewPublicKey(b []byte) (*PublicKey, error) {
	pk, id, err := keyFormat.NewPublic(b)
	if err != nil {
		return nil, err
	}
	return &PublicKey{ID: id, k: pk}, nil
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
