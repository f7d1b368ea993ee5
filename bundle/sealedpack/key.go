package sealedpack

import (
	"crypto/hpke"
	"fmt"

	"github.com/edgeseal/edgeseal/internal/hpkekey"
)

// PEM block types of the auditor's key files.
const (
	PrivateKeyType = "EDGESEAL AUDITOR PRIVATE KEY"
	PublicKeyType  = "EDGESEAL AUDITOR PUBLIC KEY"
)

var keyFormat = hpkekey.Format{PrivateType: PrivateKeyType, PublicType: PublicKeyType,
	Err: func(what, reason string, err error) error { return &KeyError{What: what, Reason: reason, Err: err} }}

// KeyError is a malformed key or key file.
type KeyError struct {
	What, Reason string
	Err          error
}

func (e *KeyError) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("sealedpack: %s: %s: %v", e.What, e.Reason, e.Err)
	}
	return fmt.Sprintf("sealedpack: %s: %s", e.What, e.Reason)
}

func (e *KeyError) Unwrap() error { return e.Err }

// PublicKey is an auditor's public key: what a pack is sealed to.
type PublicKey struct {
	ID string // "sha256:" and the hex SHA-256 of the serialized key
	k  hpke.PublicKey
}

// PrivateKey is an auditor's private key; it stays with the auditor.
type PrivateKey struct {
	ID string
	k  hpke.PrivateKey
}

// GenerateKey makes a new auditor key pair.
func GenerateKey() (*PrivateKey, error) {
	k, err := hpkekey.KEM().GenerateKey()
	if err != nil {
		return nil, fmt.Errorf("sealedpack: generate key: %w", err)
	}
	return &PrivateKey{ID: hpkekey.KeyID(k.PublicKey().Bytes()), k: k}, nil
}

// DeriveKey derives a key pair from ikm (RFC 9180 DeriveKeyPair), for
// test vectors.
func DeriveKey(ikm []byte) (*PrivateKey, error) {
	k, err := hpkekey.KEM().DeriveKeyPair(ikm)
	if err != nil {
		return nil, fmt.Errorf("sealedpack: derive key: %w", err)
	}
	return &PrivateKey{ID: hpkekey.KeyID(k.PublicKey().Bytes()), k: k}, nil
}

// Public returns the public half.
func (k *PrivateKey) Public() *PublicKey { return &PublicKey{ID: k.ID, k: k.k.PublicKey()} }

// MarshalPEM writes the private key file (PEM, headers Version, Suite,
// Key-Id; keep it 0600).
func (k *PrivateKey) MarshalPEM() ([]byte, error) {
	b, err := k.k.Bytes()
	if err != nil {
		return nil, fmt.Errorf("sealedpack: private key: %w", err)
	}
	return keyFormat.Encode(PrivateKeyType, k.ID, b), nil
}

// MarshalPEM writes the public key file.
func (k *PublicKey) MarshalPEM() []byte { return keyFormat.Encode(PublicKeyType, k.ID, k.k.Bytes()) }

// Bytes is the serialized public key (RFC 9180 SerializePublicKey).
func (k *PublicKey) Bytes() []byte { return k.k.Bytes() }

// ParsePrivateKey reads a private key file strictly (one PEM block of
// PrivateKeyType, exactly the headers Version, Suite and Key-Id, the key
// id the key's, nothing after the block, at most 8 KiB).
func ParsePrivateKey(b []byte) (*PrivateKey, error) {
	k, id, err := keyFormat.ParsePrivate(b)
	if err != nil {
		return nil, err
	}
	return &PrivateKey{ID: id, k: k}, nil
}

// ParsePublicKey reads a public key file strictly (as ParsePrivateKey).
func ParsePublicKey(b []byte) (*PublicKey, error) {
	k, id, err := keyFormat.ParsePublic(b)
	if err != nil {
		return nil, err
	}
	return &PublicKey{ID: id, k: k}, nil
}
