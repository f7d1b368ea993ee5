package wire

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"

	"github.com/edgeseal/edgeseal/bundle/internal/strict"
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
	if !ok || !strict.DecodeHex(h[:], hx) {
		return h, FormatErr("hash", "%.80q is not sha256:<64 lowercase hex>", s)
	}
	return h, nil
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
