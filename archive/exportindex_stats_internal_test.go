package archive

import (
	"bytes"
	"slices"
	"testing"
	"time"

	"github.com/edgeseal/edgeseal/store"
)

// TestStatCounts: the indexer's counter additions for a batch of entries
// over two days (statCounts) are the sum of each entry's own (statOps),
// one addition a counter, in key order; and each entry's keys
// (entryKeyOps) are entryOps' without its additions.
func TestStatCounts(t *testing.T) {
	const n = 200000
	var sc statCounts
	want := map[string]int64{}
	for _, i := range []int{0, 1, 49, 86399, 86400, 86449, 99, 86401} {
		e := benchEntry(i, n)
		sc.add(e)
		all, err := entryOps(e)
		if err != nil {
			t.Fatal(err)
		}
		keys, err := entryKeyOps(nil, e)
		if err != nil {
			t.Fatal(err)
		}
		for _, op := range statOps(e, e.at.UTC().Format(time.DateOnly)) {
			want[string(op.Key)] += op.Delta
		}
		if !slices.EqualFunc(keys, all[:len(keys)], func(x, y store.IndexOp) bool {
			return x.Kind == y.Kind && bytes.Equal(x.Key, y.Key) && bytes.Equal(x.Value, y.Value)
		}) || len(all)-len(keys) != len(statOps(e, "d")) {
			t.Fatalf("entry %d: keys %d of %d operations", i, len(keys), len(all))
		}
	}
	got := sc.ops()
	if len(got) != len(want) {
		t.Fatalf("%d additions, want %d", len(got), len(want))
	}
	days := map[string]bool{}
	for k, op := range got {
		if op.Kind != store.IndexAdd || want[string(op.Key)] != op.Delta {
			t.Fatalf("addition %q %d, want %d", op.Key, op.Delta, want[string(op.Key)])
		}
		if k > 0 && bytes.Compare(got[k-1].Key, op.Key) >= 0 {
			t.Fatalf("additions out of order at %d", k)
		}
		if bytes.HasPrefix(op.Key, statKey("status", "", "")[:len(comp([]byte{kStat}, "status"))]) {
			d, _, _ := readComp(op.Key[len(comp([]byte{kStat}, "status")):])
			days[d] = true
		}
	}
	if len(days) != 2 {
		t.Fatalf("status counters of %d days, want 2", len(days))
	}
}
