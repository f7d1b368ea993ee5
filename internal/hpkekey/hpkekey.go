// Package hpkekey holds the PEM key-file format shared by the
// MLKEM768X25519 HPKE key pairs of bundle/payloadcipher (content keys) and
// tpm/recovery (recovery keys): one PEM block with exactly the headers
// Version, Suite and Key-Id, the key id being "sha256:" and the hex SHA-256
// of the serialized public key. The packages differ only in their PEM block
// types and in their error type, which a Format carries; their key types
// are PrivateKey and PublicKey instantiated with a Flavour of their own.
package hpkekey

import (
	"bytes"
	"crypto/hpke"
	"crypto/sha256"
	"encoding/hex"
	"encoding/pem"
	"fmt"
)

// Suite names the HPKE ciphersuite of every key file of this version.
const Suite = "MLKEM768X25519/HKDF-SHA256/AES-256-GCM"

// Version is the version header of the key files.
const Version = "1"

// MaxFile bounds a key file.
const MaxFile = 8 << 10

// KEM is the suite's KEM.
func KEM() hpke.KEM { return hpke.MLKEM768X25519() }

// KeyID is the id of a public key: "sha256:" and the hex SHA-256 of its
// serialized form (RFC 9180 SerializePublicKey).
func KeyID(public []byte) string {
	sum := sha256.Sum256(public)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// Format is one package's flavour of the key files.
type Format struct {
	// Name is the package's name, the prefix of its errors.
	Name                    string
	PrivateType, PublicType string
	// Err builds the package's error for a malformed key or key file;
	// what is "private key" or "public key".
	Err func(what, reason string, err error) error
}

// NewPrivate deserializes a private key and returns it with its key id.
func (f Format) NewPrivate(b []byte) (hpke.PrivateKey, string, error) {
	k, err := KEM().NewPrivateKey(b)
	if err != nil {
		return nil, "", f.Err("private key", "not an "+Suite+" private key", err)
	}
	return k, KeyID(k.PublicKey().Bytes()), nil
}

// NewPublic deserializes a public key and returns it with its key id.
func (f Format) NewPublic(b []byte) (hpke.PublicKey, string, error) {
	pk, err := KEM().NewPublicKey(b)
	if err != nil {
		return nil, "", f.Err("public key", "not an "+Suite+" public key", err)
	}
	return pk, KeyID(pk.Bytes()), nil
}

// Encode writes a key file of PEM type typ.
func (f Format) Encode(typ, id string, b []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Headers: map[string]string{
		"Version": Version, "Suite": Suite, "Key-Id": id,
	}, Bytes: b})
}

// ParsePrivate reads a private key file strictly: one PEM block of type
// PrivateType with exactly the headers Version, Suite and Key-Id, the key
// id matching the key, nothing after the block.
func (f Format) ParsePrivate(b []byte) (hpke.PrivateKey, string, error) {
	return parse(f, b, f.PrivateType, "private key", f.NewPrivate)
}

// ParsePublic reads a public key file strictly (as ParsePrivate).
func (f Format) ParsePublic(b []byte) (hpke.PublicKey, string, error) {
	return parse(f, b, f.PublicType, "public key", f.NewPublic)
}

func parse[K any](f Format, b []byte, typ, what string, newKey func([]byte) (K, string, error)) (K, string, error) {
	var zero K
	blk, err := f.decode(b, typ, what)
	if err != nil {
		return zero, "", err
	}
	k, id, err := newKey(blk.Bytes)
	if err != nil {
		return zero, "", err
	}
	if id != blk.Headers["Key-Id"] {
		return zero, "", f.Err(what, fmt.Sprintf("Key-Id header %.80q is not the key's id %s", blk.Headers["Key-Id"], id), nil)
	}
	return k, id, nil
}

func (f Format) decode(b []byte, typ, what string) (*pem.Block, error) {
	bad := func(format string, args ...any) error {
		return f.Err(what, fmt.Sprintf(format, args...), nil)
	}
	if len(b) > MaxFile {
		return nil, bad("file of %d bytes, at most %d", len(b), MaxFile)
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
	if v, ok := blk.Headers["Version"]; !ok || v != Version {
		return nil, bad("Version %.20q, want %s", v, Version)
	}
	if s, ok := blk.Headers["Suite"]; !ok || s != Suite {
		return nil, bad("Suite %.80q, want %s", s, Suite)
	}
	if _, ok := blk.Headers["Key-Id"]; !ok {
		return nil, bad("no Key-Id header")
	}
	return blk, nil
}
