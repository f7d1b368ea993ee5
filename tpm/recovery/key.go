package recovery

import (
	"crypto/hpke"
	"fmt"

	"github.com/edgeseal/edgeseal/internal/hpkekey"
)

// Suite names the HPKE ciphersuite of every key and wrap of this version.
const Suite = hpkekey.Suite

// KeyVersion is the version header of the key files.
const KeyVersion = hpkekey.Version

// PEM block types of the key files.
const (
	PrivateKeyType = "EDGESEAL RECOVERY PRIVATE KEY"
	PublicKeyType  = "EDGESEAL RECOVERY PUBLIC KEY"
)

// keyFormat is the shared key-file format with this package's PEM types
// and FormatError.
var keyFormat = hpkekey.Format{PrivateType: PrivateKeyType, PublicType: PublicKeyType,
	Err: func(what, reason string, err error) error { return &FormatError{What: what, Reason: reason, Err: err} }}

func kem() hpke.KEM   { return hpkekey.KEM() }
func kdf() hpke.KDF   { return hpke.HKDFSHA256() }
func aead() hpke.AEAD { return hpke.AES256GCM() }

// KeyID is the id of a recovery public key: "sha256:" and the hex SHA-256
// of its serialized form (RFC 9180 SerializePublicKey).
func KeyID(public []byte) string { return hpkekey.KeyID(public) }

// PublicKey is an operator's recovery public key.
type PublicKey struct {
	ID string
	k  hpke.PublicKey
}

// PrivateKey is an operator's recovery private key. It belongs offline.
type PrivateKey struct {
	ID string
	k  hpke.PrivateKey
}

// GenerateKey makes a new recovery key pair.
func GenerateKey() (*PrivateKey, error) {
	k, err := kem().GenerateKey()
	if err != nil {
		return nil, fmt.Errorf("recovery: generate key: %w", err)
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
		return nil, fmt.Errorf("recovery: private key: %w", err)
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
