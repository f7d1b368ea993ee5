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
