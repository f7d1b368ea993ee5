package recovery

import (
	"crypto/hpke"

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

// keyFormat is the shared key-file format with this package's name, PEM
// types and FormatError.
var keyFormat = hpkekey.Format{Name: "recovery", PrivateType: PrivateKeyType, PublicType: PublicKeyType,
	Err: func(what, reason string, err error) error { return &FormatError{What: what, Reason: reason, Err: err} }}

// recoveryKey is the flavour of the recovery keys.
type recoveryKey struct{}

func (recoveryKey) Format() *hpkekey.Format { return &keyFormat }

func kdf() hpke.KDF   { return hpke.HKDFSHA256() }
func aead() hpke.AEAD { return hpke.AES256GCM() }

// KeyID is the id of a recovery public key: "sha256:" and the hex SHA-256
// of its serialized form (RFC 9180 SerializePublicKey).
func KeyID(public []byte) string { return hpkekey.KeyID(public) }

// PublicKey is an operator's recovery public key: its ID (KeyID) and
// MarshalPEM (the public key file).
type PublicKey = hpkekey.PublicKey[recoveryKey]

// PrivateKey is an operator's recovery private key. It belongs offline.
// Its ID is that of its public half (Public); MarshalPEM writes the
// private key file: a PEM block with the version, the suite and the key
// id as headers.
type PrivateKey = hpkekey.PrivateKey[recoveryKey]

// GenerateKey makes a new recovery key pair.
func GenerateKey() (*PrivateKey, error) { return hpkekey.Generate[recoveryKey]() }

// NewPrivateKey deserializes a private key (RFC 9180 DeserializePrivateKey).
func NewPrivateKey(b []byte) (*PrivateKey, error) { return hpkekey.NewPrivateKey[recoveryKey](b) }

// ParsePrivateKey reads a private key file strictly: one PEM block of type
// PrivateKeyType with exactly the headers Version, Suite and Key-Id, the
// key id matching the key, nothing after the block.
func ParsePrivateKey(b []byte) (*PrivateKey, error) { return hpkekey.ParsePrivateKey[recoveryKey](b) }

// ParsePublicKey reads a public key file strictly (as ParsePrivateKey).
func ParsePublicKey(b []byte) (*PublicKey, error) { return hpkekey.ParsePublicKey[recoveryKey](b) }
