package store

import (
	"bytes"
	"crypto/sha256"
	"testing"
)

func sha256Sum(b []byte) [32]byte { return sha256.Sum256(b) }

// FuzzDecodeMeta: the metadata value is read back from disk.
func FuzzDecodeMeta(f *testing.F) {
	f.Add(meta{}.encode())
	f.Add(meta{Size: 1 << 40, LastLeaf: sha256Sum([]byte("x"))}.encode())
	f.Add([]byte{})
	f.Add(bytes.Repeat([]byte{0xff}, metaLen))
	bad := meta{Size: 3}.encode()
	bad[5] ^= 1
	f.Add(bad)
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := decodeMeta(b)
		if err != nil {
			return
		}
		if !bytes.Equal(m.encode(), b) {
			t.Fatalf("decode/encode not a round trip: %x", b)
		}
	})
}

// FuzzExtendRange: a compact range (as a verifier receives it) extended
// by leaves folds to the root of the whole tree, and bad lengths fail.
func FuzzExtendRange(f *testing.F) {
	f.Add(uint8(0), uint8(1), false)
	f.Add(uint8(5), uint8(11), false)
	f.Add(uint8(8), uint8(0), true)
	f.Fuzz(func(t *testing.T, size, add uint8, drop bool) {
		leaves := make([][32]byte, int(size)+int(add))
		for i := range leaves {
			leaves[i] = leafHash([]byte{byte(i), byte(i >> 8)})
		}
		// The compact range of [0,size) from scratch.
		rng, err := ExtendRange(nil, 0, leaves[:size])
		if err != nil {
			t.Fatal(err)
		}
		if FoldRange(rng) != mth(leaves[:size]) {
			t.Fatalf("range of %d does not fold to the root", size)
		}
		if drop && len(rng) > 0 {
			if _, err := ExtendRange(rng[1:], uint64(size), leaves[size:]); err == nil {
				t.Fatal("short range accepted")
			}
			return
		}
		ext, err := ExtendRange(rng, uint64(size), leaves[size:])
		if err != nil {
			t.Fatal(err)
		}
		if FoldRange(ext) != mth(leaves) {
			t.Fatalf("range %d extended by %d does not fold to the root", size, add)
		}
	})
}

// FuzzParseSplit: a split payload's value is read back from disk; what
// parses re-encodes to the same bytes, and nothing panics.
func FuzzParseSplit(f *testing.F) {
	f.Add(encodeSplit(sha256Sum([]byte("prefix")), []byte("rest of the payload")))
	f.Add(encodeSplit([32]byte{}, nil))
	f.Add([]byte{})
	f.Add([]byte{splitVersion})
	f.Add(append([]byte{2}, make([]byte, 40)...))
	f.Fuzz(func(t *testing.T, b []byte) {
		id, rest, err := parseSplit(b)
		if err != nil {
			return
		}
		if !bytes.Equal(encodeSplit(id, rest), b) {
			t.Fatalf("parse/encode not a round trip: %x", b)
		}
	})
}
