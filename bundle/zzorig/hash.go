package zzorig

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
func decodeLowerHex(dst []byte, s string) bool {
	if len(s) != 2*len(dst) {
		return false
	}
	for i := range dst {
		hi, lo := unhex(s[2*i]), unhex(s[2*i+1])
		if hi > 15 || lo > 15 {
			return false
		}
		dst[i] = hi<<4 | lo
	}
	return true
}

func unhex(c byte) byte {
	switch {
	case c >= '0' && c <= '9':
		return c - '0'
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10
	}
	return 255
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
