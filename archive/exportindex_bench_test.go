package archive

import (
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/edgeseal/edgeseal/store"
)

// benchIndex returns an export index holding n synthetic entries (100
// devices, 20 principals, 10 workflows, a record every second): in
// EDGESEAL_BENCH_INDEX_DIR when set (filled once, reused by later runs of
// the same n), else in a temporary directory.
func benchIndex(b *testing.B, n int) *Archive {
	b.Helper()
	dir := os.Getenv("EDGESEAL_BENCH_INDEX_DIR")
	if dir == "" {
		dir = b.TempDir()
	}
	x, err := store.OpenIndex(b.Context(), store.IndexOptions{Dir: dir})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { x.Close() })
	mark := []byte("bench-n")
	if v, err := x.Get(b.Context(), mark); err == nil && len(v) == 8 && binary.BigEndian.Uint64(v) == uint64(n) {
		return &Archive{xi: &exportIndexer{x: x}}
	}
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var ops []store.IndexOp
	flush := func() {
		if err := x.Write(b.Context(), ops); err != nil {
			b.Fatal(err)
		}
		ops = ops[:0]
	}
	for i := range n {
		li := uint64(i / 50)
		at := start.Add(time.Duration(i) * time.Second)
		e := &ExportEntry{
			Device: fmt.Sprintf("site%d/dev%d", i%10, i%100), Site: fmt.Sprintf("site%d", i%10), Export: fmt.Sprintf("exp-%09d", i),
			Seq: uint64(i), Type: "export", Status: StatusAccepted, Workflow: fmt.Sprintf("wf-%d", i%10), App: "n8n",
			Principal: fmt.Sprintf("p-%d", i%20), Classification: "internal", Time: at.Format(time.RFC3339Nano), at: at,
			Bundle: fmt.Sprintf("sha256:%064x", li), LogIndex: &li, raw: []byte(`{"v":1}`),
		}
		eo, err := entryOps(e)
		if err != nil {
			b.Fatal(err)
		}
		ops = append(ops, eo...)
		if len(ops) > 4000 {
			flush()
		}
	}
	ops = append(ops, store.IndexOp{Kind: store.IndexPut, Key: mark, Value: binary.BigEndian.AppendUint64(nil, uint64(n))})
	flush()
	return &Archive{xi: &exportIndexer{x: x}}
}

func benchN() int {
	n, err := strconv.Atoi(os.Getenv("EDGESEAL_BENCH_EXPORTS"))
	if err != nil || n <= 0 {
		return 50000
	}
	return n
}

func reportLatency(b *testing.B, d []time.Duration) {
	if len(d) == 0 {
		return
	}
	slices.Sort(d)
	b.ReportMetric(float64(d[len(d)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(d[len(d)*99/100].Microseconds())/1000, "p99-ms")
}

// BenchmarkExportLookup: the lookup of one export by device and id (a
// prefix scan of its primary keys and two point reads), at
// EDGESEAL_BENCH_EXPORTS entries (default 50000); reports p50 and p99.
func BenchmarkExportLookup(b *testing.B) {
	n := benchN()
	a := benchIndex(b, n)
	ctx := context.Background()
	var lat []time.Duration
	b.ResetTimer()
	for b.Loop() {
		i := rand.IntN(n)
		t0 := time.Now()
		e, _, _, err := a.Export(ctx, fmt.Sprintf("site%d/dev%d", i%10, i%100), fmt.Sprintf("exp-%09d", i))
		lat = append(lat, time.Since(t0))
		if err != nil || e.Seq != uint64(i) {
			b.Fatalf("export %d: %v", i, err)
		}
	}
	reportLatency(b, lat)
}

// BenchmarkExportSearch: a page of 100 entries of one principal in a
// day's range, newest first (secondary key walk and point reads).
func BenchmarkExportSearch(b *testing.B) {
	n := benchN()
	a := benchIndex(b, n)
	ctx := context.Background()
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	span := time.Duration(n) * time.Second
	var lat []time.Duration
	b.ResetTimer()
	for b.Loop() {
		from := start.Add(time.Duration(rand.Int64N(int64(span))))
		t0 := time.Now()
		_, err := a.SearchExports(ctx, ExportQuery{Principal: fmt.Sprintf("p-%d", rand.IntN(20)), From: from, To: from.Add(24 * time.Hour), Limit: 100})
		lat = append(lat, time.Since(t0))
		if err != nil {
			b.Fatal(err)
		}
	}
	reportLatency(b, lat)
}
