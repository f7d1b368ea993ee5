package tpm_test

import (
	"crypto/sha256"
	"encoding/binary"
	"testing"
)

// BenchmarkSeal measures the TPM work of one seal: IncrementCounter +
// Quote + Sign.
func BenchmarkSeal(b *testing.B) {
	for _, mk := range rigMakers {
		name := "swtpm"
		if isSim(mk) {
			name = "simulator"
		}
		b.Run(name, func(b *testing.B) {
			r := mk(b)
			tp := r.open(b)
			var buf [8]byte
			for i := 0; b.Loop(); i++ {
				if _, err := tp.IncrementCounter(ctx); err != nil {
					b.Fatal(err)
				}
				binary.BigEndian.PutUint64(buf[:], uint64(i))
				nonce := sha256.Sum256(buf[:])
				if _, err := tp.Quote(ctx, nonce[:]); err != nil {
					b.Fatal(err)
				}
				if _, err := tp.Sign(ctx, nonce[:]); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(b.Elapsed().Seconds()*1000/float64(b.N), "ms/seal")
		})
	}
}
