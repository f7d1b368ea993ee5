package archive

import (
	"slices"
	"testing"

	"github.com/edgeseal/edgeseal/store"
)

// TestMergeAdds: the additions to one counter become one with their sum
// at the first one's place, other operations keep their order, and a
// key that a put also writes keeps its additions as they are.
func TestMergeAdds(t *testing.T) {
	put := func(k string) store.IndexOp {
		return store.IndexOp{Kind: store.IndexPut, Key: []byte(k), Value: []byte("v")}
	}
	add := func(k string, d int64) store.IndexOp {
		return store.IndexOp{Kind: store.IndexAdd, Key: []byte(k), Delta: d}
	}
	ops := []store.IndexOp{put("e1"), add("a", 1), add("b", 1), put("e2"), add("a", 1), add("c", 2), add("b", -1), put("c"), add("a", 3), add("c", 1)}
	got := mergeAdds(slices.Clone(ops))
	want := []store.IndexOp{put("e1"), add("a", 5), add("b", 0), put("e2"), add("c", 2), put("c"), add("c", 1)}
	if !slices.EqualFunc(got, want, func(x, y store.IndexOp) bool {
		return x.Kind == y.Kind && string(x.Key) == string(y.Key) && string(x.Value) == string(y.Value) && x.Delta == y.Delta
	}) {
		t.Fatalf("mergeAdds:\n got %+v\nwant %+v", got, want)
	}
	if got := mergeAdds([]store.IndexOp{put("x")}); len(got) != 1 || string(got[0].Key) != "x" {
		t.Fatalf("no additions: %+v", got)
	}
}
