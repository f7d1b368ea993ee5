package archive

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"path/filepath"
	"testing"

	"github.com/edgeseal/edgeseal/store"
)

// TestExportIndexReadsEarlierLayout: an index an earlier version wrote
// (the entry as JSON under 'e', its record under 'r', a 'B' key by
// bundle, no bundle keys) is read as it is, beside entries in the
// compact form (the record under 'e', the bundle's fields under its 'b'
// key, its log index under its 'n' key): a search and a lookup return
// the same entries (as JSON) and records for both, a search by bundle
// finds the entries of a bundle in either form or both, and one by
// status pages through the entries of that status (accepted ones have
// no status key), so such an index needs no rebuild. An entry written in the compact form holds
// one key of its own where the earlier form held two, and no 'B' key.
func TestExportIndexReadsEarlierLayout(t *testing.T) {
	ctx := t.Context()
	x, err := store.OpenIndex(ctx, store.IndexOptions{Dir: filepath.Join(t.TempDir(), "search")})
	if err != nil {
		t.Fatal(err)
	}
	defer x.Close()
	const n = 200
	// Bundle 0: entries 0 and 49 earlier, 1 compact; bundle 1: 50
	// compact; bundle 2: 100 earlier.
	ents := []*ExportEntry{benchEntry(0, n), benchEntry(1, n), benchEntry(49, n), benchEntry(50, n), benchEntry(100, n)}
	var ops []store.IndexOp
	for i, e := range ents {
		eo, err := entryOps(e)
		if err != nil {
			t.Fatal(err)
		}
		own := 0
		for _, op := range eo {
			if op.Key[0] == kEntry || op.Key[0] == kRecord || bytes.HasPrefix(op.Key, []byte{kSecondary, fieldBundle}) {
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
			bk := binary.BigEndian.AppendUint64(secondaryPrefix(fieldBundle, e.Bundle), timeKey(e.at))
			eo = append(eo, store.IndexOp{Kind: store.IndexPut, Key: append(bk, eo[0].Key[1:]...)})
		}
		ops = append(ops, eo...)
	}
	for li := range uint64(2) { // the bundles of the compact entries 1 and 50
		bops, err := bundleRefOps(benchRef(li))
		if err != nil {
			t.Fatal(err)
		}
		ops = append(ops, bops...)
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
	for li, want := range [][]int{{0, 1, 2}, {3}, {4}} {
		p, err := a.SearchExports(ctx, ExportQuery{Bundle: benchRef(uint64(li)).digest, Limit: 10, Asc: true})
		if err != nil || len(p.Items) != len(want) {
			t.Fatalf("bundle %d: %d entries, want %d: %v", li, len(p.Items), len(want), err)
		}
		for k, i := range want {
			if p.Items[k].Export != ents[i].Export {
				t.Fatalf("bundle %d: %s, want %s", li, p.Items[k].Export, ents[i].Export)
			}
		}
	}
	for status, want := range map[string]int{StatusAccepted: 4, StatusRefused: 1} {
		p, err := a.SearchExports(ctx, ExportQuery{Status: status, Limit: 2})
		got := 0
		for err == nil {
			for _, it := range p.Items {
				if it.Status != status {
					t.Fatalf("status %s: entry %s is %s", status, it.Export, it.Status)
				}
			}
			got += len(p.Items)
			if p.Next == "" {
				break
			}
			p, err = a.SearchExports(ctx, ExportQuery{Status: status, Limit: 2, Cursor: p.Next})
		}
		if err != nil || got != want {
			t.Fatalf("status %s: %d entries, want %d: %v", status, got, want, err)
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
