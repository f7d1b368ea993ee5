package archive

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"
)

// BenchmarkExportLookup: the lookup of one export by device and id (a
// prefix scan of its primary keys and two point reads) in the
// benchmarks' index of EDGESEAL_BENCH_EXPORTS entries (default 50000;
// benchindex_test.go), a random export each time; reports p50 and p99.
func BenchmarkExportLookup(b *testing.B) {
	n := benchN()
	a := benchArchive(b, n)
	ctx := context.Background()
	var lat []time.Duration
	for b.Loop() {
		i := rand.IntN(n)
		t0 := time.Now()
		e, _, _, err := a.Export(ctx, benchDevice(i%benchFleet), fmt.Sprintf("exp-%09d", i))
		lat = append(lat, time.Since(t0))
		if err != nil || e.Seq != uint64(i) {
			b.Fatalf("export %d: %v", i, err)
		}
	}
	reportLatency(b, lat)
}

// BenchmarkExportLookupFloor: the floor of BenchmarkExportLookup on the
// same index: one raw point read (store.Index.Get, a Badger Get in a read
// transaction) of a random export's entry by its full key.
func BenchmarkExportLookupFloor(b *testing.B) {
	n := benchN()
	a := benchArchive(b, n)
	g := newBenchGen(n)
	ctx := context.Background()
	var lat []time.Duration
	var key []byte
	for b.Loop() {
		i := rand.IntN(n)
		key = g.pk(append(key[:0], kEntry), i)
		t0 := time.Now()
		v, err := a.xi.x.Get(ctx, key)
		lat = append(lat, time.Since(t0))
		if err != nil || len(v) == 0 {
			b.Fatalf("export %d: %v", i, err)
		}
	}
	reportLatency(b, lat)
}

// BenchmarkExportSearch: a page of 100 entries of one principal in a
// day's range, newest first (secondary key walk and point reads).
func BenchmarkExportSearch(b *testing.B) {
	n := benchN()
	a := benchArchive(b, n)
	ctx := context.Background()
	span := time.Duration(n) * time.Second
	var lat []time.Duration
	for b.Loop() {
		from := benchStart.Add(time.Duration(rand.Int64N(int64(span))))
		t0 := time.Now()
		_, err := a.SearchExports(ctx, ExportQuery{Principal: fmt.Sprintf("p-%d", rand.IntN(20)), From: from, To: from.Add(24 * time.Hour), Limit: 100})
		lat = append(lat, time.Since(t0))
		if err != nil {
			b.Fatal(err)
		}
	}
	reportLatency(b, lat)
}
