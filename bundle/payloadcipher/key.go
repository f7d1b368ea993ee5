package payloadcipher

import (
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

// keyFormat is the shared key-file format with this package's name, PEM
// types and KeyError.
var keyFormat = hpkekey.Format{Name: "payloadcipher", PrivateType: PrivateKeyType, PublicType: PublicKeyType,
	Err: func(what, reason string, err error) error { return &KeyError{What: what, Reason: reason, Err: err} }}

// contentKey is the flavour of the content keys.
type contentKey struct{}

func (contentKey) Format() *hpkekey.Format { return &keyFormat }

// PublicKey is an archive's content public key: its ID (KeyID), Bytes
// (RFC 9180 SerializePublicKey) and MarshalPEM (the public key file).
type PublicKey = hpkekey.PublicKey[contentKey]

// PrivateKey is an archive's content private key. It stays with the
// archive (and its escrow). Its ID is that of its public half (Public);
// MarshalPEM writes the private key file (a PEM block with the version,
// the suite and the key id as headers), Bytes the serialized key (RFC
// 9180 SerializePrivateKey: the 32-byte seed for this suite), for an
// escrow.
type PrivateKey = hpkekey.PrivateKey[contentKey]

// GenerateKey makes a new content key pair.
func GenerateKey() (*PrivateKey, error) { return hpkekey.Generate[contentKey]() }

// NewPrivateKey deserializes a private key (RFC 9180 DeserializePrivateKey).
func NewPrivateKey(b []byte) (*PrivateKey, error) { return hpkekey.NewPrivateKey[contentKey](b) }

// ParsePrivateKey reads a private key file strictly: one PEM block of type
// PrivateKeyType with exactly the headers Version, Suite and Key-Id, the
// key id matching the key, nothing after the block.
func ParsePrivateKey(b []byte) (*PrivateKey, error) { return hpkekey.ParsePrivateKey[contentKey](b) }

// ParsePublicKey reads a public key file strictly (as ParsePrivateKey).
func ParsePublicKey(b []byte) (*PublicKey, error) { return hpkekey.ParsePublicKey[contentKey](b) }

// NewPublicKey deserializes a public key (RFC 9180 DeserializePublicKey).
func NewPublicKey(b []byte) (*PublicKey, error) { return hpkekey.NewPublicKey[contentKey](b) }

// DeriveKey derives a key pair from ikm (RFC 9180 DeriveKeyPair), for
// test vectors.
func DeriveKey(ikm []byte) (*PrivateKey, error) { return hpkekey.Derive[contentKey](ikm) }

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
