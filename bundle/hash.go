package bundle

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
)

// HashPrefix starts every hash written in JSON.
const HashPrefix = "sha256:"

// FormatHash writes h as "sha256:<lowercase hex>".
func FormatHash(h [32]byte) string {
	var b [len(HashPrefix) + 64]byte
	copy(b[:], HashPrefix)
	hex.Encode(b[len(HashPrefix):], h[:])
	return string(b[:])
}

// ParseHash reads "sha256:<64 lowercase hex>" strictly.
func ParseHash(s string) ([32]byte, error) {
	var h [32]byte
	hx, ok := strings.CutPrefix(s, HashPrefix)
	if !ok || !decodeLowerHex(h[:], hx) {
		return h, formatErr("hash", "%.80q is not sha256:<64 lowercase hex>", s)
	}
	return h, nil
}

// decodeLowerHex decodes exactly len(dst)*2 lowercase hex digits.
func decodeLowerHex[T string | []byte](dst []byte, s T) bool {
	if len(s) != 2*len(dst) {
		return false
	}
	var bad byte
	for i := range dst {
		hi, lo := lowerHex[s[2*i]], lowerHex[s[2*i+1]]
		bad |= hi | lo
		dst[i] = hi<<4 | lo
	}
	return bad&0xf0 == 0
}

// lowerHex maps '0'-'9' and 'a'-'f' to their value and every other byte
// to 0xff.
var lowerHex = func() (t [256]byte) {
	for i := range t {
		t[i] = 0xff
	}
	for c := byte('0'); c <= '9'; c++ {
		t[c] = c - '0'
	}
	for c := byte('a'); c <= 'f'; c++ {
		t[c] = c - 'a' + 10
	}
	return t
}()

// LeafHash is the RFC 6962 leaf hash of a record: SHA-256(0x00 || record).
func LeafHash(record []byte) [32]byte {
	h := sha256.New()
	h.Write([]byte{0})
	h.Write(record)
	var out [32]byte
	h.Sum(out[:0])
	return out
}

// nodeHash is the RFC 6962 interior node hash SHA-256(0x01 || l || r).
func nodeHash(l, r [32]byte) [32]byte {
	var buf [65]byte
	buf[0] = 1
	copy(buf[1:], l[:])
	copy(buf[33:], r[:])
	return sha256.Sum256(buf[:])
}

// Hashed is bytes with their SHA-256, computed by HashBytes over exactly
// those bytes (the same slice, not a copy): whoever receives a Hashed can
// rely on its digest without hashing again. The bytes must not be
// modified once hashed (Bytes returns them, not a copy). The zero Hashed
// is not valid.
type Hashed struct {
	b   []byte
	sum [32]byte
	ok  bool
}

// HashBytes hashes b.
func HashBytes(b []byte) Hashed {
	return Hashed{b: b, sum: sha256.Sum256(b), ok: true}
}

// Bytes returns the bytes hashed (the caller's slice).
func (h Hashed) Bytes() []byte { return h.b }

// Sum returns their SHA-256.
func (h Hashed) Sum() [32]byte { return h.sum }

// Valid reports whether h was made by HashBytes.
func (h Hashed) Valid() bool { return h.ok }
