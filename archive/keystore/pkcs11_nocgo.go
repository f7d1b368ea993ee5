//go:build !cgo

package keystore

import (
	"crypto"
	"crypto/ed25519"
	"errors"
	"io"
)

// ErrNoPKCS11 is returned by a build without cgo, which has no PKCS#11.
var ErrNoPKCS11 = errors.New("keystore: pkcs11: this build has no PKCS#11 support (built without cgo)")

// PKCS11Config names a key in a token.
type PKCS11Config struct {
	Module string
	URI    URI
	PIN    string
}

// PKCS11Key is an Ed25519 key in a token (not in this build).
type PKCS11Key struct{}

// OpenPKCS11 fails: no PKCS#11 in this build.
func OpenPKCS11(PKCS11Config) (*PKCS11Key, error) { return nil, ErrNoPKCS11 }

// GeneratePKCS11 fails: no PKCS#11 in this build.
func GeneratePKCS11(PKCS11Config) (*PKCS11Key, error) { return nil, ErrNoPKCS11 }

// ImportPKCS11 fails: no PKCS#11 in this build.
func ImportPKCS11(PKCS11Config, ed25519.PrivateKey) (*PKCS11Key, error) { return nil, ErrNoPKCS11 }

// Public returns nil.
func (*PKCS11Key) Public() crypto.PublicKey { return nil }

// Sign fails.
func (*PKCS11Key) Sign(io.Reader, []byte, crypto.SignerOpts) ([]byte, error) { return nil, ErrNoPKCS11 }

// Close does nothing.
func (*PKCS11Key) Close() error { return nil }

// WrapIVSize is the AES-GCM nonce a wrapped value starts with.
const WrapIVSize = 12

// ErrUnwrap is a wrapped value that does not decrypt under the wrap key.
var ErrUnwrap = errors.New("keystore: pkcs11: the wrapped value does not open with this wrap key (another key, another binding, or changed)")

// PKCS11WrapKey is an AES-256 wrap key in a token (not in this build).
type PKCS11WrapKey struct{}

// OpenPKCS11WrapKey fails: no PKCS#11 in this build.
func OpenPKCS11WrapKey(PKCS11Config) (*PKCS11WrapKey, error) { return nil, ErrNoPKCS11 }

// GeneratePKCS11WrapKey fails: no PKCS#11 in this build.
func GeneratePKCS11WrapKey(PKCS11Config) (*PKCS11WrapKey, error) { return nil, ErrNoPKCS11 }

// Label is "".
func (*PKCS11WrapKey) Label() string { return "" }

// Wrap fails: no PKCS#11 in this build.
func (*PKCS11WrapKey) Wrap([]byte, []byte) ([]byte, error) { return nil, ErrNoPKCS11 }

// Unwrap fails: no PKCS#11 in this build.
func (*PKCS11WrapKey) Unwrap([]byte, []byte) ([]byte, error) { return nil, ErrNoPKCS11 }

// Close does nothing.
func (*PKCS11WrapKey) Close() error { return nil }
