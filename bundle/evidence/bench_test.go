package evidence_test

import (
	"crypto/sha256"
	"testing"

	"github.com/edgeseal/edgeseal/bundle/bundletest"
	"github.com/edgeseal/edgeseal/bundle/evidence"
	"github.com/edgeseal/edgeseal/bundle/proof"
)

// BenchmarkEvidencePack builds the evidence pack of one export with a
// 16 MiB payload from its bundle's bytes and receipt (proof.Build and
// evidence.Build, in memory), beside the floor: SHA-256 over the same
// bytes (every file of the pack), measured in the same run. Both report
// the pack's bytes per second (SetBytes); the target is pack >= 50% of
// sha256.
func BenchmarkEvidencePack(b *testing.B) {
	f := newFixture(b, 1, bundletest.Options{Records: 3, PayloadSize: 16 << 20})
	id := f.exports(b, 0)[0].ExportID
	in := proof.Input{Bundle: f.Raw[0], ExportID: id, Trust: f.Trust, Receipt: f.Receipts[0], ArchiveKey: f.Log.PKIX()}
	build := func() *evidence.Pack {
		pr, err := proof.Build(in)
		if err != nil {
			b.Fatal(err)
		}
		p, err := evidence.Build(b.Context(), evidence.Input{Proofs: []*proof.Proof{pr}, Selection: "bench"})
		if err != nil {
			b.Fatal(err)
		}
		return p
	}
	ref := build()
	size := ref.Bytes()
	b.Run("pack", func(b *testing.B) {
		b.SetBytes(size)
		for b.Loop() {
			build()
		}
	})
	b.Run("sha256", func(b *testing.B) {
		b.SetBytes(size)
		for b.Loop() {
			for _, d := range ref.Files {
				sha256.Sum256(d)
			}
		}
	})
}
