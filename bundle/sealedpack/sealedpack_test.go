package sealedpack_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"testing"

	"github.com/edgeseal/edgeseal/bundle/payloadcipher"
	"github.com/edgeseal/edgeseal/bundle/sealedpack"
)

var update = flag.Bool("update", false, "rewrite testdata/sealed-pack-v1.*")

func testKey(t testing.TB, seed string) *sealedpack.PrivateKey {
	t.Helper()
	k, err := sealedpack.DeriveKey([]byte(seed + "................................")[:32])
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// pattern is n bytes of i mod 251.
func pattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i % 251)
	}
	return b
}

// TestRoundTrip: plaintexts of every chunk boundary open to themselves
// with the key they were sealed to.
func TestRoundTrip(t *testing.T) {
	k := testKey(t, "auditor")
	for _, n := range []int{0, 1, sealedpack.ChunkSize - 1, sealedpack.ChunkSize, sealedpack.ChunkSize + 1, 3*sealedpack.ChunkSize + 17} {
		pt := pattern(n)
		sealed, err := sealedpack.Seal(k.Public(), pt)
		if err != nil {
			t.Fatal(err)
		}
		if n > 64 && bytes.Contains(sealed, pt[:64]) {
			t.Fatalf("%d bytes: the sealed file holds the plaintext", n)
		}
		got, err := sealedpack.Open(k, sealed, 1<<30)
		if err != nil || !bytes.Equal(got, pt) {
			t.Fatalf("%d bytes: opened %d bytes, %v", n, len(got), err)
		}
		if _, err := sealedpack.Open(k, sealed, int64(n)-1); n > 0 && err == nil {
			t.Fatalf("%d bytes opened within %d", n, n-1)
		}
	}
}

// TestRefusals: a file cut short (in a chunk, at a chunk boundary, the
// final chunk dropped), extended, with two chunks swapped, a flag
// flipped, a header byte changed (magic, suite, key id, encapsulated
// key), sealed to another key, or a key file of another type, is refused.
func TestRefusals(t *testing.T) {
	k := testKey(t, "auditor")
	pt := pattern(3*sealedpack.ChunkSize + 100)
	sealed, err := sealedpack.Seal(k.Public(), pt)
	if err != nil {
		t.Fatal(err)
	}
	chunk := 5 + sealedpack.ChunkSize + payloadcipher.TagSize
	h := sealedpack.HeaderSize
	swapped := bytes.Clone(sealed)
	copy(swapped[h:], sealed[h+chunk:h+2*chunk])
	copy(swapped[h+chunk:], sealed[h:h+chunk])
	set := func(i int, v byte) []byte { b := bytes.Clone(sealed); b[i] = v; return b }
	flip := func(i int) []byte { b := bytes.Clone(sealed); b[i] ^= 1; return b }
	cases := map[string][]byte{
		"cut in a chunk":          sealed[:len(sealed)-7],
		"final chunk dropped":     sealed[:h+3*chunk],
		"cut in the header":       sealed[:h-1],
		"extended":                append(bytes.Clone(sealed), 0),
		"chunks swapped":          swapped,
		"flag flipped":            set(h, 1),
		"flag unknown":            set(h, 7),
		"magic":                   flip(0),
		"suite":                   flip(len(sealedpack.Magic) + 5),
		"key id":                  flip(len(sealedpack.Magic) + 6),
		"encapsulated key":        flip(h - 5),
		"ciphertext":              flip(h + 5 + 100),
		"final chunk as a middle": set(h+3*chunk, 0),
	}
	for name, b := range cases {
		if got, err := sealedpack.Open(k, b, 1<<30); err == nil {
			t.Errorf("%s: opened to %d bytes", name, len(got))
		}
	}
	other := testKey(t, "someone else")
	var wk *sealedpack.WrongKeyError
	if _, err := sealedpack.Open(other, sealed, 1<<30); !errors.As(err, &wk) || wk.Want != k.ID {
		t.Errorf("another key: %v", err)
	}
	var se *payloadcipher.SuiteError
	if _, err := sealedpack.Open(k, flip(len(sealedpack.Magic)+5), 1<<30); !errors.As(err, &se) {
		t.Errorf("another suite: %v, want a suite error", err)
	}
	// Key files: each parses as itself only.
	pemb, err := k.MarshalPEM()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sealedpack.ParsePublicKey(pemb); err == nil {
		t.Error("a private key file parsed as a public key")
	}
	p2, err := sealedpack.ParsePrivateKey(pemb)
	if err != nil || p2.ID != k.ID {
		t.Fatalf("private key file: %v", err)
	}
	pub, err := sealedpack.ParsePublicKey(k.Public().MarshalPEM())
	if err != nil || pub.ID != k.ID {
		t.Fatalf("public key file: %v", err)
	}
	content, _ := payloadcipher.DeriveKey(make([]byte, 32))
	if _, err := sealedpack.ParsePublicKey(content.Public().MarshalPEM()); err == nil {
		t.Error("a content key file parsed as an auditor key")
	}
}

// vector is testdata/sealed-pack-v1.json, beside sealed-pack-v1.sealed.
type vector struct {
	Comment   string `json:"comment"`
	IKM       string `json:"ikm"`
	KeyID     string `json:"keyId"`
	PublicKey string `json:"publicKey"`
	Plaintext string `json:"plaintext"`
	Size      int    `json:"size"`
	Digest    string `json:"digest"`
	Sealed    string `json:"sealed"`
}

// TestVector: the sealed file of testdata opens with the key derived from
// its ikm to the plaintext it names (size and SHA-256), and the key id is
// the public key's; -update writes a new sealing.
func TestVector(t *testing.T) {
	ikm := []byte("edgeseal auditor key vector v1..")
	k, err := sealedpack.DeriveKey(ikm)
	if err != nil {
		t.Fatal(err)
	}
	pt := pattern(sealedpack.ChunkSize + 1000)
	sum := sha256.Sum256(pt)
	if *update {
		sealed, err := sealedpack.Seal(k.Public(), pt)
		if err != nil {
			t.Fatal(err)
		}
		v := vector{Comment: "A sealed evidence pack (docs/formats.md, Sealed evidence packs): the auditor key is DeriveKeyPair(ikm) of MLKEM768X25519; the plaintext is size bytes of i mod 251; sealed is the file beside this one.",
			IKM: hex.EncodeToString(ikm), KeyID: k.ID, PublicKey: hex.EncodeToString(k.Public().Bytes()), Plaintext: "i mod 251", Size: len(pt),
			Digest: "sha256:" + hex.EncodeToString(sum[:]), Sealed: "sealed-pack-v1.sealed"}
		j, _ := json.MarshalIndent(v, "", "  ")
		if err := os.WriteFile("testdata/sealed-pack-v1.json", append(j, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile("testdata/sealed-pack-v1.sealed", sealed, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	raw, err := os.ReadFile("testdata/sealed-pack-v1.json")
	if err != nil {
		t.Fatal(err)
	}
	var v vector
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatal(err)
	}
	if v.KeyID != k.ID || v.PublicKey != hex.EncodeToString(k.Public().Bytes()) {
		t.Fatalf("vector key %s, derived %s", v.KeyID, k.ID)
	}
	sealed, err := os.ReadFile("testdata/" + v.Sealed)
	if err != nil {
		t.Fatal(err)
	}
	got, err := sealedpack.Open(k, sealed, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	gs := sha256.Sum256(got)
	if len(got) != v.Size || "sha256:"+hex.EncodeToString(gs[:]) != v.Digest || !bytes.Equal(got, pt) {
		t.Fatalf("vector opened to %d bytes %x", len(got), gs)
	}
}

// FuzzOpen: the sealed-file parser never panics, and what opens is the
// one plaintext sealed to this key.
func FuzzOpen(f *testing.F) {
	k := testKey(f, "auditor")
	good, err := sealedpack.Seal(k.Public(), []byte("a small pack"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add(good[:sealedpack.HeaderSize])
	f.Add([]byte(sealedpack.Magic))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		pt, err := sealedpack.Open(k, b, 1<<20)
		if err == nil && !bytes.Equal(pt, []byte("a small pack")) {
			t.Fatalf("%d bytes opened to %q", len(b), pt)
		}
	})
}

// FuzzParseKey: the key-file parsers never panic, and a key that parses
// writes back to the same key id.
func FuzzParseKey(f *testing.F) {
	k := testKey(f, "auditor")
	priv, _ := k.MarshalPEM()
	f.Add(priv)
	f.Add(k.Public().MarshalPEM())
	f.Add([]byte("-----BEGIN EDGESEAL AUDITOR PUBLIC KEY-----\nVersion: 1\n\nAAAA\n-----END EDGESEAL AUDITOR PUBLIC KEY-----\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		if p, err := sealedpack.ParsePublicKey(b); err == nil {
			if q, err := sealedpack.ParsePublicKey(p.MarshalPEM()); err != nil || q.ID != p.ID {
				t.Fatalf("a public key does not round-trip: %v", err)
			}
		}
		if p, err := sealedpack.ParsePrivateKey(b); err == nil && p.Public().ID != p.ID {
			t.Fatal("a private key's id is not its public key's")
		}
	})
}
