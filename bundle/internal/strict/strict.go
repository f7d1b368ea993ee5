package strict

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// MaxJSONInt is the largest integer a format writes: 2^53-1, exact in
// every JSON implementation.
const MaxJSONInt = 1<<53 - 1

// Unmarshal decodes exactly one JSON value into v, rejecting unknown
// fields and trailing data.
func Unmarshal(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return fmt.Errorf("trailing data")
	}
	if _, err := dec.Token(); err == nil {
		return fmt.Errorf("trailing data")
	}
	return nil
}

// FirstDiff returns the offset of the first byte where a and b differ,
// or the length of the shorter one when it is a prefix of the other.
func FirstDiff(a, b []byte) int {
	n := min(len(a), len(b))
	for i := range n {
		if a[i] != b[i] {
			return i
		}
	}
	return n
}

// DecodeHex decodes exactly len(dst)*2 lowercase hex digits into dst and
// reports whether s was that.
func DecodeHex[T string | []byte](dst []byte, s T) bool {
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

// IsHex reports whether s is only lowercase hex digits.
func IsHex(s string) bool {
	var bad byte
	for _, c := range []byte(s) {
		bad |= lowerHex[c]
	}
	return bad&0xf0 == 0
}
