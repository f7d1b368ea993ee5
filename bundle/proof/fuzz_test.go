package proof_test

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/edgeseal/edgeseal/bundle/proof"
)

// FuzzParse: Parse never panics; what it accepts marshals to a document
// it accepts again and that marshals to the same bytes (the round trip),
// and Verify runs on it without panicking.
func FuzzParse(f *testing.F) {
	seeds, _ := filepath.Glob("testdata/*.json")
	more, _ := filepath.Glob("testdata/tampered/*.json")
	for _, s := range append(seeds, more...) {
		if raw, err := os.ReadFile(s); err == nil {
			f.Add(raw)
		}
	}
	f.Add([]byte(`{"v":1,"type":"edgeseal.export-proof"}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		p, err := proof.Parse(raw)
		if err != nil {
			return
		}
		out, err := p.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		q, err := proof.Parse(out)
		if err != nil {
			t.Fatalf("re-parse of marshalled proof: %v", err)
		}
		again, err := q.Marshal()
		if err != nil || !bytes.Equal(out, again) {
			t.Fatalf("round trip differs: %v", err)
		}
		_ = proof.Verify(q, proof.Options{})
	})
}
