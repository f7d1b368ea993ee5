package payloadcipher_test

import (
	"testing"

	"github.com/edgeseal/edgeseal/bundle/payloadcipher"
)

// BenchmarkSeal seals a 1 KiB payload to a content key, as the agent
// does for each export: one HPKE encapsulation (ML-KEM-768 and two
// X25519 scalar multiplications), the key schedule and AES-256-GCM.
func BenchmarkSeal(b *testing.B) {
	k, err := payloadcipher.DeriveKey([]byte("seal benchmark"))
	if err != nil {
		b.Fatal(err)
	}
	pub := k.Public()
	pt := make([]byte, 1024)
	info := payloadcipher.Info("site/dev", []byte(`{"exportId":"x"}`))
	b.SetBytes(int64(len(pt)))
	for b.Loop() {
		if _, _, err := payloadcipher.Seal(pub, info, pt); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkOpen opens what BenchmarkSeal seals, as the archive does for
// each encrypted payload it admits.
func BenchmarkOpen(b *testing.B) {
	k, err := payloadcipher.DeriveKey([]byte("seal benchmark"))
	if err != nil {
		b.Fatal(err)
	}
	pt := make([]byte, 1024)
	info := payloadcipher.Info("site/dev", []byte(`{"exportId":"x"}`))
	file, c, err := payloadcipher.Seal(k.Public(), info, pt)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(pt)))
	for b.Loop() {
		if _, err := payloadcipher.Open(k, &c, info, file); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSealWindow seals a 1 KiB payload with version 2, as the agent
// does for each export: in the default window of 1024 payloads, one
// encapsulation per 1024 seals, and per payload the exporter's HKDF
// expansion and AES-256-GCM.
func BenchmarkSealWindow(b *testing.B) {
	k, err := payloadcipher.DeriveKey([]byte("seal benchmark"))
	if err != nil {
		b.Fatal(err)
	}
	pub := k.Public()
	s := payloadcipher.NewSealer(0, 0, nil)
	pt := make([]byte, 1024)
	ctx := payloadcipher.ExporterContext("site/dev", []byte(`{"exportId":"x"}`))
	b.SetBytes(int64(len(pt)))
	for b.Loop() {
		if _, _, err := s.Seal(pub, ctx, pt); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkOpenWindow opens what BenchmarkSealWindow seals through an
// Opener, as the archive does for each payload of a window it has
// decapsulated.
func BenchmarkOpenWindow(b *testing.B) {
	k, err := payloadcipher.DeriveKey([]byte("seal benchmark"))
	if err != nil {
		b.Fatal(err)
	}
	pt := make([]byte, 1024)
	ctx := payloadcipher.ExporterContext("site/dev", []byte(`{"exportId":"x"}`))
	file, c, err := payloadcipher.NewSealer(0, 0, nil).Seal(k.Public(), ctx, pt)
	if err != nil {
		b.Fatal(err)
	}
	o := payloadcipher.NewOpener(0)
	b.SetBytes(int64(len(pt)))
	for b.Loop() {
		if _, err := payloadcipher.OpenV2(k, &c, ctx, file, o); err != nil {
			b.Fatal(err)
		}
	}
}
