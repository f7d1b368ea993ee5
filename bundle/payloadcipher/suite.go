package payloadcipher

import (
	"crypto/hpke"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"

	"github.com/edgeseal/edgeseal/internal/hpkekey"
)

// HPKE identifiers (RFC 9180 §7 and the IANA HPKE registry) of the only
// suite this version seals with and opens.
const (
	KEMMLKEM768X25519 = 0x647a // ML-KEM-768 + X25519 hybrid
	KDFHKDFSHA256     = 0x0001
	AEADAES256GCM     = 0x0002
)

// Sizes of the suite: the serialized public key, the encapsulated key and
// the AEAD tag.
const (
	PublicKeySize = 1216
	EncSize       = 1120
	TagSize       = 16
)

// MaxPlaintext bounds a payload this package seals or opens (the agent's
// payload limit is below it).
const MaxPlaintext = 1 << 30

// Suite is the triple of HPKE ids a record names.
type Suite struct {
	KEM, KDF, AEAD uint16
}

// Default is the suite of every payload this version seals: post-quantum
// hybrid KEM, HKDF-SHA256, AES-256-GCM.
var Default = Suite{KEM: KEMMLKEM768X25519, KDF: KDFHKDFSHA256, AEAD: AEADAES256GCM}

func (s Suite) String() string {
	return fmt.Sprintf("kem 0x%04x/kdf 0x%04x/aead 0x%04x", s.KEM, s.KDF, s.AEAD)
}

// Known reports whether this version can check and open s. Only Default
// is; a later suite is added here and beside it, never instead of it.
func (s Suite) Known() bool { return s == Default }

// SuiteError is a record or key naming a suite this version does not know.
type SuiteError struct{ Suite Suite }

func (e *SuiteError) Error() string {
	return "payloadcipher: unknown suite " + e.Suite.String() + " (this version knows only " + Default.String() + ")"
}

func (s Suite) parts() (hpke.KEM, hpke.KDF, hpke.AEAD, error) {
	if !s.Known() {
		return nil, nil, nil, &SuiteError{Suite: s}
	}
	return hpke.MLKEM768X25519(), hpke.HKDFSHA256(), hpke.AES256GCM(), nil
}

// Cipher is the payloadCipher member of an export record: the suite, the
// content key the payload was sealed to and the digest of the ciphertext
// file. The record keeps the plaintext's digest in its payload member.
type Cipher struct {
	AEAD   int    `json:"aead"`
	Digest string `json:"digest"` // "sha256:..." of the ciphertext file
	KDF    int    `json:"kdf"`
	KEM    int    `json:"kem"`
	KeyID  string `json:"keyId"` // KeyID of the content public key
	// V is the payload cipher version: 0 (the member absent) for
	// version 1, one HPKE encapsulation per payload; V2 for a window's
	// shared encapsulation and a key exported per payload (window.go).
	V int `json:"v,omitempty"`
}

// Payload cipher versions a record names (payloadCipher.v). Version 1
// is written by leaving the member out.
const (
	V1 = 1
	V2 = 2
)

// Version is the payload cipher version c names: 1 when V is absent.
func (c *Cipher) Version() int {
	if c.V == 0 {
		return V1
	}
	return c.V
}

// KnownVersion reports whether this version can check and open
// ciphertexts of version v: 1 and 2.
func KnownVersion(v int) bool { return v == V1 || v == V2 }

// VersionError is a record naming a payload cipher version this version
// does not know.
type VersionError struct{ V int }

func (e *VersionError) Error() string {
	return fmt.Sprintf("payloadcipher: unknown payload cipher version %d (this version knows 1 and 2)", e.V)
}

// FileSize is the size of the ciphertext file of a plaintext of size
// plain under c, -1 when c names a suite or version this version does
// not know. Versions 1 and 2 have the same layout: enc and the AEAD
// ciphertext.
func (c *Cipher) FileSize(plain int64) int64 {
	if !c.Suite().Known() || !KnownVersion(c.Version()) {
		return -1
	}
	return plain + EncSize + TagSize
}

// Suite returns the suite c names (ids out of the uint16 range map to a
// suite no version knows).
func (c *Cipher) Suite() Suite {
	id := func(n int) uint16 {
		if n < 0 || n > 0xffff {
			return 0xffff
		}
		return uint16(n)
	}
	s := Suite{KEM: id(c.KEM), KDF: id(c.KDF), AEAD: id(c.AEAD)}
	if s.KEM == 0xffff && c.KEM != 0xffff || s.KDF == 0xffff && c.KDF != 0xffff || s.AEAD == 0xffff && c.AEAD != 0xffff {
		return Suite{0xffff, 0xffff, 0xffff}
	}
	return s
}

// Check checks c's form: a known suite and version, a key id and a
// digest that are hash strings. An unknown suite is a *SuiteError, an
// unknown version a *VersionError.
func (c *Cipher) Check() error {
	if s := c.Suite(); !s.Known() {
		return &SuiteError{Suite: s}
	}
	if v := c.Version(); !KnownVersion(v) {
		return &VersionError{V: v}
	}
	if !ValidHash(c.KeyID) {
		return fmt.Errorf("payloadcipher: keyId %.80q is not sha256:<64 hex>", c.KeyID)
	}
	if !ValidHash(c.Digest) {
		return fmt.Errorf("payloadcipher: digest %.80q is not sha256:<64 hex>", c.Digest)
	}
	return nil
}

// AppendCanonical appends c as RFC 8785 writes it; without the digest
// member when withDigest is false (the form Info binds).
func (c *Cipher) AppendCanonical(dst []byte, withDigest bool) []byte {
	dst = append(dst, `{"aead":`...)
	dst = strconv.AppendInt(dst, int64(c.AEAD), 10)
	if withDigest {
		dst = append(dst, `,"digest":"`...)
		dst = append(dst, c.Digest...)
		dst = append(dst, '"')
	}
	dst = append(dst, `,"kdf":`...)
	dst = strconv.AppendInt(dst, int64(c.KDF), 10)
	dst = append(dst, `,"kem":`...)
	dst = strconv.AppendInt(dst, int64(c.KEM), 10)
	dst = append(dst, `,"keyId":"`...)
	dst = append(dst, c.KeyID...)
	dst = append(dst, '"')
	if c.V != 0 {
		dst = append(dst, `,"v":`...)
		dst = strconv.AppendInt(dst, int64(c.V), 10)
	}
	return append(dst, '}')
}

// ValidHash reports whether s is "sha256:" and 64 lowercase hex digits.
func ValidHash(s string) bool { return hpkekey.ValidKeyID(s) }

// KeyID is the id of a content public key: "sha256:" and the hex SHA-256
// of its serialized form (RFC 9180 SerializePublicKey, 1216 bytes).
func KeyID(public []byte) string { return hpkekey.KeyID(public) }

// digestPrefix starts every hash string.
const digestPrefix = "sha256:"

// Digest is the hash string of b.
func Digest(b []byte) string {
	sum := sha256.Sum256(b)
	return digestPrefix + hex.EncodeToString(sum[:])
}
