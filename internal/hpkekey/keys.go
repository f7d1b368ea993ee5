package hpkekey

import (
	"crypto/hpke"
	"fmt"
	"strings"
)

// Flavour is one package's kind of key pair: a type whose zero value
// returns that package's Format. Each package instantiates PrivateKey and
// PublicKey with its own flavour, so a content key is never taken for a
// recovery key.
type Flavour interface{ Format() *Format }

func format[F Flavour]() *Format {
	var f F
	return f.Format()
}

// PrivateKey is a private key of flavour F and its key id.
type PrivateKey[F Flavour] struct {
	ID string
	k  hpke.PrivateKey
}

// PublicKey is a public key of flavour F and its key id.
type PublicKey[F Flavour] struct {
	ID string
	k  hpke.PublicKey
}

func private[F Flavour](k hpke.PrivateKey) *PrivateKey[F] {
	return &PrivateKey[F]{ID: KeyID(k.PublicKey().Bytes()), k: k}
}

// Generate makes a new key pair.
func Generate[F Flavour]() (*PrivateKey[F], error) {
	k, err := KEM().GenerateKey()
	if err != nil {
		return nil, fmt.Errorf("%s: generate key: %w", format[F]().Name, err)
	}
	return private[F](k), nil
}

// Derive derives a key pair from ikm (RFC 9180 DeriveKeyPair), for test
// vectors.
func Derive[F Flavour](ikm []byte) (*PrivateKey[F], error) {
	k, err := KEM().DeriveKeyPair(ikm)
	if err != nil {
		return nil, fmt.Errorf("%s: derive key: %w", format[F]().Name, err)
	}
	return private[F](k), nil
}

// NewPrivateKey deserializes a private key (RFC 9180
// DeserializePrivateKey).
func NewPrivateKey[F Flavour](b []byte) (*PrivateKey[F], error) {
	return privateOf[F](format[F]().NewPrivate(b))
}

// NewPublicKey deserializes a public key (RFC 9180 DeserializePublicKey).
func NewPublicKey[F Flavour](b []byte) (*PublicKey[F], error) {
	return publicOf[F](format[F]().NewPublic(b))
}

// ParsePrivateKey reads a private key file strictly (Format.ParsePrivate).
func ParsePrivateKey[F Flavour](b []byte) (*PrivateKey[F], error) {
	return privateOf[F](format[F]().ParsePrivate(b))
}

// ParsePublicKey reads a public key file strictly (Format.ParsePublic).
func ParsePublicKey[F Flavour](b []byte) (*PublicKey[F], error) {
	return publicOf[F](format[F]().ParsePublic(b))
}

func privateOf[F Flavour](k hpke.PrivateKey, id string, err error) (*PrivateKey[F], error) {
	if err != nil {
		return nil, err
	}
	return &PrivateKey[F]{ID: id, k: k}, nil
}

func publicOf[F Flavour](k hpke.PublicKey, id string, err error) (*PublicKey[F], error) {
	if err != nil {
		return nil, err
	}
	return &PublicKey[F]{ID: id, k: k}, nil
}

// Public returns the public half.
func (k *PrivateKey[F]) Public() *PublicKey[F] {
	return &PublicKey[F]{ID: k.ID, k: k.k.PublicKey()}
}

// MarshalPEM writes the private key file: a PEM block with the version,
// the suite and the key id as headers.
func (k *PrivateKey[F]) MarshalPEM() ([]byte, error) {
	f := format[F]()
	b, err := k.k.Bytes()
	if err != nil {
		return nil, fmt.Errorf("%s: private key: %w", f.Name, err)
	}
	return f.Encode(f.PrivateType, k.ID, b), nil
}

// Bytes is the serialized private key (RFC 9180 SerializePrivateKey: the
// 32-byte seed for this suite), for an escrow.
func (k *PrivateKey[F]) Bytes() ([]byte, error) { return k.k.Bytes() }

// HPKE is the key for crypto/hpke.
func (k *PrivateKey[F]) HPKE() hpke.PrivateKey { return k.k }

// MarshalPEM writes the public key file.
func (k *PublicKey[F]) MarshalPEM() []byte {
	f := format[F]()
	return f.Encode(f.PublicType, k.ID, k.k.Bytes())
}

// Bytes is the serialized public key (RFC 9180 SerializePublicKey).
func (k *PublicKey[F]) Bytes() []byte { return k.k.Bytes() }

// HPKE is the key for crypto/hpke.
func (k *PublicKey[F]) HPKE() hpke.PublicKey { return k.k }

// ValidKeyID reports whether s has the form of a key id (and of every
// "sha256:" hash of the formats): "sha256:" and 64 lowercase hex digits.
func ValidKeyID(s string) bool {
	h, ok := strings.CutPrefix(s, "sha256:")
	if !ok || len(h) != 64 {
		return false
	}
	for _, c := range h {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}
