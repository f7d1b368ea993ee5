package archive

import (
	"bytes"
	"encoding/json"
	"path/filepath"
	"testing"

	"github.com/edgeseal/edgeseal/store"
)

// TestExportIndexReadsEarlierLayout: an index an earlier version wrote
// (the entry as JSON under 'e', its record under 'r', no bundle key) is
// read as it is, beside entries in the compact form (the record under
// 'e', the bundle's fields under its 'b' key): a search and a lookup
// return the same entries (as JSON) and records for both, so such an
// index needs no rebuild. An entry written in the compact form holds one
// key of its own where the earlier form held two.
func TestExportIndexReadsEarlierLayout(t *testing.T) {
	ctx := t.Context()
	x, err := store.OpenIndex(ctx, store.IndexOptions{Dir: filepath.Join(t.TempDir(), "search")})
	if err != nil {
		t.Fatal(err)
	}
	defer x.Close()
	const n = 100
	ents := []*ExportEntry{benchEntry(0, n), benchEntry(1, n), benchEntry(49, n), benchEntry(50, n)}
	var ops []store.IndexOp
	for i, e := range ents {
		eo, err := entryOps(e)
		if err != nil {
			t.Fatal(err)
		}
		own := 0
		for _, op := range eo {
			if op.Key[0] == kEntry || op.Key[0] == kRecord {
				own++
			}
		}
		if own != 1 || eo[0].Key[0] != kEntry || !bytes.Equal(eo[0].Value[1:], e.raw) {
			t.Fatalf("entry %d: %d keys of its own, first %q", i, own, eo[0].Key)
		}
		if i%2 == 0 { // as an earlier version wrote it
			body, err := json.Marshal(e)
			if err != nil {
				t.Fatal(err)
			}
			eo[0].Value = body
			eo = append(eo, store.IndexOp{Kind: store.IndexPut, Key: append([]byte{kRecord}, eo[0].Key[1:]...), Value: e.raw})
		}
		ops = append(ops, eo...)
	}
	for li := range uint64(2) { // the bundles of the compact entries 1 and 50
		bop, err := bundleRefOp(benchRef(li))
		if err != nil {
			t.Fatal(err)
		}
		ops = append(ops, bop)
	}
	if err := x.Write(ctx, ops); err != nil {
		t.Fatal(err)
	}
	a := &Archive{xi: &exportIndexer{x: x}}
	p, err := a.SearchExports(ctx, ExportQuery{Limit: 10, Asc: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Items) != len(ents) {
		t.Fatalf("%d entries found, want %d", len(p.Items), len(ents))
	}
	for i, e := range ents {
		want, _ := json.Marshal(e)
		got, _ := json.Marshal(p.Items[i])
		if !bytes.Equal(got, want) {
			t.Fatalf("entry %d (earlier form: %v):\n got %s\nwant %s", i, i%2 == 0, got, want)
		}
		le, rec, others, err := a.Export(ctx, e.Device, e.Export)
		if err != nil || others != 0 || !bytes.Equal(rec, e.raw) {
			t.Fatalf("lookup %d: %v, %d others, record %q", i, err, others, rec)
		}
		if got, _ := json.Marshal(le); !bytes.Equal(got, want) {
			t.Fatalf("lookup %d:\n got %s\nwant %s", i, got, want)
		}
	}
	// A compact entry whose bundle key is missing is an error, not an
	// entry without its bundle.
	if err := x.Write(ctx, []store.IndexOp{{Kind: store.IndexDelete, Key: bundleRefKey(1)}}); err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := a.Export(ctx, ents[3].Device, ents[3].Export); err == nil {
		t.Fatal("an entry read without its bundle key")
	}
}
