package payloadcipher_test

import (
	"bytes"
	"encoding/hex"
	"testing"

	"github.com/edgeseal/edgeseal/bundle/payloadcipher"
)

// FuzzOpen: the ciphertext parser (CheckFile, Split, Open) never panics on
// any bytes, and what opens is a sealing of the one plaintext sealed to
// this key and info (the seed of another fuzz worker process is another
// encapsulation of it).
func FuzzOpen(f *testing.F) {
	k := testKey(f, "edgeseal content key test")
	info := payloadcipher.Info("site-a/dev-1", []byte("bound"))
	good, c, err := payloadcipher.Seal(k.Public(), info, []byte("payload"))
	if err != nil {
		f.Fatal(err)
	}
	v := readVector(f)
	ct, _ := hex.DecodeString(v.Ciphertext)
	f.Add(good)
	f.Add(ct)
	f.Add(good[:payloadcipher.EncSize+payloadcipher.TagSize])
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		c2 := c
		c2.Digest = payloadcipher.Digest(b)
		if enc, rest, err := payloadcipher.Split(c2.Suite(), b); err == nil && (len(enc) != payloadcipher.EncSize || len(rest) < payloadcipher.TagSize) {
			t.Fatalf("split into %d and %d bytes", len(enc), len(rest))
		}
		pt, err := payloadcipher.Open(k, &c2, info, b)
		if err == nil && !bytes.Equal(pt, []byte("payload")) {
			t.Fatalf("a ciphertext of %d bytes opened to %q", len(b), pt)
		}
	})
}

// FuzzOpenV2: the version 2 parser (CheckFile, Split, OpenV2 through an
// Opener) never panics on any bytes, and what opens is the one plaintext
// sealed to this key and exporter context (the stored vector's or this
// process's window).
func FuzzOpenV2(f *testing.F) {
	k := testKey(f, "edgeseal content key test")
	ctx := payloadcipher.ExporterContext("site-a/dev-1", []byte("bound"))
	good, c, err := payloadcipher.NewSealer(0, 0, nil).Seal(k.Public(), ctx, []byte("payload"))
	if err != nil {
		f.Fatal(err)
	}
	v := readVectorV2(f)
	for _, p := range v.Payloads {
		ct, _ := hex.DecodeString(p.Ciphertext)
		f.Add(ct)
	}
	f.Add(good)
	f.Add(good[:payloadcipher.EncSize+payloadcipher.TagSize])
	f.Add([]byte{})
	o := payloadcipher.NewOpener(4)
	f.Fuzz(func(t *testing.T, b []byte) {
		c2 := c
		c2.Digest = payloadcipher.Digest(b)
		pt, err := payloadcipher.OpenV2(k, &c2, ctx, b, o)
		if err == nil && !bytes.Equal(pt, []byte("payload")) {
			t.Fatalf("a ciphertext of %d bytes opened to %q", len(b), pt)
		}
		if o.Len() > 4 {
			t.Fatalf("the opener keeps %d windows", o.Len())
		}
	})
}
