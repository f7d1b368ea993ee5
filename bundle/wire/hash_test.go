package wire_test

import (
	"crypto/sha256"
	"testing"

	"github.com/edgeseal/edgeseal/bundle/wire"
)

func TestHashBytes(t *testing.T) {
	if (wire.Hashed{}).Valid() {
		t.Fatal("the zero Hashed is valid")
	}
	b := []byte("some bundle bytes")
	h := wire.HashBytes(b)
	if !h.Valid() || h.Sum() != sha256.Sum256(b) {
		t.Fatalf("HashBytes: valid %v, sum %x", h.Valid(), h.Sum())
	}
	if &h.Bytes()[0] != &b[0] || len(h.Bytes()) != len(b) {
		t.Fatal("Bytes is not the slice hashed")
	}
}
