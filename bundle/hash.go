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
	if !ok || len(hx) != 64 || strings.ToLower(hx) != hx {
		return h, formatErr("hash", "%.80q is not sha256:<64 lowercase hex>", s)
	}
	if _, err := hex.Decode(h[:], []byte(hx)); err != nil {
		return h, wrapFormat("hash", "hex", err)
	}
	return h, nil
}

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
