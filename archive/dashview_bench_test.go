package archive

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/edgeseal/edgeseal/store"
)

// dashPage is the archive's side of the first view of one dashboard page.
type dashPage struct {
	name string
	load func(ctx context.Context, a *Archive) error
}

// dashPages are the reads of each page's first view over the benchmarks'
// index (benchindex_test.go): the export search's first page (50
// newest), the policy page (per-day counts by status and by reason over
// the index's last 30 days, the policy in force on every device), the
// fleet (device summaries, open alerts).
func dashPages(n int) []dashPage {
	to := benchStart.Add(time.Duration(n) * time.Second)
	from := to.AddDate(0, 0, -29)
	return []dashPage{
		{"exports", func(ctx context.Context, a *Archive) error {
			p, err := a.SearchExports(ctx, ExportQuery{Limit: 50})
			if err == nil && len(p.Items) != min(50, n) {
				err = fmt.Errorf("%d items", len(p.Items))
			}
			return err
		}},
		{"policy", func(ctx context.Context, a *Archive) error {
			for _, by := range []string{"status", "reason"} {
				if _, _, err := a.ExportStats(ctx, by, from, to); err != nil {
					return err
				}
			}
			ps, err := a.DevicePolicies(ctx, "")
			if err == nil && len(ps) != min(benchFleet, n) {
				err = fmt.Errorf("policies of %d devices", len(ps))
			}
			return err
		}},
		{"fleet", func(ctx context.Context, a *Archive) error {
			if _, err := a.DeviceSummaries(ctx); err != nil {
				return err
			}
			_, err := a.OpenAlerts(ctx, 1000)
			return err
		}},
	}
}

// dashFloors are the essential reads of the same pages, straight from the
// index with nothing decoded: the 50 newest time keys and the 50 entries
// they name; the counters of the 30 days by status and by reason and the
// policy keys; the device summaries.
func dashFloors(n int) []dashPage {
	to := benchStart.Add(time.Duration(n) * time.Second)
	from := to.AddDate(0, 0, -29)
	scan := func(ctx context.Context, x store.IndexStore, lo, hi []byte, rev bool, limit int, fn func(k []byte)) (int, error) {
		c := 0
		err := x.Scan(ctx, store.IndexRange{Lo: lo, Hi: hi, Reverse: rev, Limit: limit}, func(k, _ []byte) bool {
			c++
			if fn != nil {
				fn(k)
			}
			return true
		})
		return c, err
	}
	return []dashPage{
		{"exports", func(ctx context.Context, a *Archive) error {
			pfx := secondaryPrefix(fieldTime, "")
			var pks [][]byte
			if _, err := scan(ctx, a.xi.x, pfx, store.PrefixEnd(pfx), true, 50, func(k []byte) {
				pks = append(pks, append([]byte{kEntry}, k[len(pfx)+8:]...))
			}); err != nil {
				return err
			}
			for _, k := range pks {
				if _, err := a.xi.x.Get(ctx, k); err != nil {
					return err
				}
			}
			return nil
		}},
		{"policy", func(ctx context.Context, a *Archive) error {
			for _, by := range []string{"status", "reason"} {
				pfx := comp([]byte{kStat}, by)
				lo := comp(append([]byte(nil), pfx...), from.Format(time.DateOnly))
				hi := store.PrefixEnd(comp(append([]byte(nil), pfx...), to.Format(time.DateOnly)))
				if _, err := scan(ctx, a.xi.x, lo, hi, false, 0, nil); err != nil {
					return err
				}
			}
			c, err := scan(ctx, a.xi.x, []byte{kPolicy}, []byte{kPolicy + 1}, false, 0, nil)
			if err == nil && c < min(benchFleet, n) {
				err = fmt.Errorf("%d policy keys", c)
			}
			return err
		}},
		{"fleet", func(ctx context.Context, a *Archive) error {
			_, err := scan(ctx, a.xi.x, []byte{kDevice}, []byte{kDevice + 1}, false, 0, nil)
			return err
		}},
	}
}

func benchPages(b *testing.B, pages []dashPage) {
	n := benchN()
	a := benchArchive(b, n)
	ctx := context.Background()
	for _, p := range pages {
		b.Run(p.name, func(b *testing.B) {
			var lat []time.Duration
			for b.Loop() {
				t0 := time.Now()
				if err := p.load(ctx, a); err != nil {
					b.Fatal(err)
				}
				lat = append(lat, time.Since(t0))
			}
			reportLatency(b, lat)
		})
	}
}

// BenchmarkDashboardPages: the archive's side of the first view of each
// dashboard page (dashPages) at EDGESEAL_BENCH_EXPORTS entries (default
// 50000) over 1000 devices; reports each page's p50 and p99.
func BenchmarkDashboardPages(b *testing.B) { benchPages(b, dashPages(benchN())) }

// BenchmarkDashboardFloor: the essential index reads of the same pages
// (dashFloors) on the same index, their floor.
func BenchmarkDashboardFloor(b *testing.B) { benchPages(b, dashFloors(benchN())) }
