package store

import (
	"bytes"
	"errors"
	"math"
	"testing"
)

func testCrypt(t testing.TB) *crypt {
	t.Helper()
	c, err := newCrypt(bytes.Repeat([]byte{7}, 32))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestCryptSealOpen(t *testing.T) {
	c := testCrypt(t)
	key, val := recordKey(5), []byte("a record that must not be readable on disk")
	stored := c.seal(key, val)
	if bytes.Contains(stored, val) || len(stored) != len(val)+sealedExtra {
		t.Fatalf("sealed value %x holds the plaintext or has the wrong length", stored)
	}
	got, err := c.open(key, stored)
	if err != nil || !bytes.Equal(got, val) {
		t.Fatalf("open = %q, %v", got, err)
	}
	if got, err := c.openInPlace(key, bytes.Clone(stored)); err != nil || !bytes.Equal(got, val) {
		t.Fatalf("openInPlace = %q, %v", got, err)
	}
	// Moved to another key, altered, truncated: a *CorruptError each, in
	// place or not.
	flipped := bytes.Clone(stored)
	flipped[len(flipped)/2] ^= 1
	for name, tc := range map[string]struct{ key, stored []byte }{
		"moved":     {recordKey(6), stored},
		"altered":   {key, flipped},
		"truncated": {key, stored[:sealedExtra-1]},
		"short":     {key, stored[:nonceLen-1]},
	} {
		var ce *CorruptError
		if _, err := c.open(tc.key, tc.stored); !errors.As(err, &ce) {
			t.Errorf("%s: %v, want *CorruptError", name, err)
		}
		if _, err := c.openInPlace(tc.key, bytes.Clone(tc.stored)); !errors.As(err, &ce) {
			t.Errorf("%s in place: %v, want *CorruptError", name, err)
		}
	}
	// Another key does not open it.
	other, err := newCrypt(bytes.Repeat([]byte{8}, 32))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := other.open(key, stored); err == nil {
		t.Error("value opened under another key")
	}
}

func TestCryptNoncesUnique(t *testing.T) {
	c := testCrypt(t)
	seen := map[[nonceLen]byte]bool{}
	take := func() {
		var n [nonceLen]byte
		c.nextNonce(n[:])
		if seen[n] {
			t.Fatalf("nonce %x repeated", n)
		}
		seen[n] = true
	}
	for range 1000 {
		take()
	}
	// The counter wraps: a fresh prefix, still no repeat.
	first := c.nonce.Load()
	first.n.Store(math.MaxUint32 - 2)
	for range 10 {
		take()
	}
	if c.nonce.Load() == first {
		t.Fatal("prefix not renewed when the counter wrapped")
	}
}

func TestCryptKeyNames(t *testing.T) {
	c := testCrypt(t)
	id := []byte("export/invoice-2026-0042")
	k := c.idemKey(id)
	if bytes.Contains(k, []byte("invoice")) || k[0] != pfxIdemKey || len(k) != 33 {
		t.Fatalf("idempotency key stored as %q", k)
	}
	if !bytes.Equal(k, c.idemKey(id)) {
		t.Fatal("key names are not deterministic")
	}
	var d [32]byte
	d[0] = 1
	if p, tk := c.digestKey(pfxPayload, d), c.digestKey(pfxTombstone, d); !bytes.Equal(p[1:], tk[1:]) || bytes.Contains(p, d[:8]) {
		t.Fatalf("payload key %x, tombstone key %x", p, tk)
	}
	// Without a key: names and values as given.
	plain, err := newCrypt(nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := plain.idemKey(id); !bytes.Equal(got[1:], id) {
		t.Fatalf("plain idempotency key %q", got)
	}
	if v, err := plain.open(nil, plain.seal(nil, []byte("x"))); err != nil || string(v) != "x" {
		t.Fatalf("plain value %q, %v", v, err)
	}
}

// FuzzCryptOpen: bytes read from disk either open to what was sealed or
// fail with a *CorruptError; never a panic.
func FuzzCryptOpen(f *testing.F) {
	c := testCrypt(f)
	f.Add(c.seal(recordKey(1), []byte("value")), uint64(1))
	f.Add([]byte{}, uint64(0))
	f.Add(bytes.Repeat([]byte{0}, sealedExtra), uint64(2))
	f.Fuzz(func(t *testing.T, stored []byte, seq uint64) {
		v, err := c.open(recordKey(seq), stored)
		if err != nil {
			var ce *CorruptError
			if !errors.As(err, &ce) {
				t.Fatalf("error %v is not a *CorruptError", err)
			}
			return
		}
		// It opened: it is authentic, so sealing it again opens too.
		if again, err := c.open(recordKey(seq), c.seal(recordKey(seq), v)); err != nil || !bytes.Equal(again, v) {
			t.Fatalf("round trip: %q, %v", again, err)
		}
	})
}
