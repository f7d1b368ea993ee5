package evidence_test

import (
	"slices"
	"testing"

	"github.com/edgeseal/edgeseal/bundle/bundletest"
	"github.com/edgeseal/edgeseal/bundle/evidence"
	"github.com/edgeseal/edgeseal/bundle/proof"
)

// freeText are the files with members no check can compare (the
// manifests are recomputed; bag-info's date, the index's selection,
// requester and creation time are informative).
var freeText = map[string]bool{"tagmanifest-sha256.txt": true, "manifest-sha256.txt": true, "bag-info.txt": true, evidence.PathIndex: true}

// FuzzPackReader replaces one file of a good pack (the index, a manifest,
// bag-info, a proof, a checkpoint, VERIFY.md, ...) with fuzzed bytes, with
// the manifests recomputed or not: the index parser and Verify never panic,
// and a pack whose file changed never verifies.
func FuzzPackReader(f *testing.F) {
	fx := newFixture(f, 2, bundletest.Options{Records: 5})
	good, err := evidence.Build(f.Context(), evidence.Input{Proofs: []*proof.Proof{fx.MustProof(f, 1, fx.exports(f, 1)[0].ExportID)}, Selection: "fuzz"})
	if err != nil {
		f.Fatal(err)
	}
	fuzzPack(f, good)
}

// FuzzPackReaderRotated is FuzzPackReader of a pack across a rotation of
// the archive key (key chain, earlier key, checkpoints of both keys).
func FuzzPackReaderRotated(f *testing.F) {
	fx, proofs, _ := rotated(f)
	good, err := evidence.Build(f.Context(), evidence.Input{Proofs: proofs, Consistency: fx.consistency, Selection: "fuzz"})
	if err != nil {
		f.Fatal(err)
	}
	fuzzPack(f, good)
}

func fuzzPack(f *testing.F, good *evidence.Pack) {
	names := slices.Sorted(func(yield func(string) bool) {
		for n := range good.Files {
			if !yield(n) {
				return
			}
		}
	})
	for i, n := range names {
		f.Add(uint8(i), false, good.Files[n])
		f.Add(uint8(i), true, good.Files[n][:len(good.Files[n])/2])
	}
	f.Fuzz(func(t *testing.T, which uint8, rehashed bool, data []byte) {
		_, _ = evidence.ParseIndex(data)
		name := names[int(which)%len(names)]
		p := &evidence.Pack{Files: make(map[string][]byte, len(good.Files))}
		for k, v := range good.Files {
			p.Files[k] = v
		}
		p.Files[name] = data
		if rehashed {
			rehashPack(p)
		}
		rep := evidence.Verify(p, proof.Options{})
		if rep.OK() && !slices.Equal(data, good.Files[name]) && !freeText[name] {
			t.Fatalf("a pack with %s changed verifies", name)
		}
	})
}
