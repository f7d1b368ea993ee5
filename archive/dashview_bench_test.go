package archive

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/edgeseal/edgeseal/store"
)

// benchFleet is the number of devices of the dashboard's benchmark.
const benchFleet = 1000

// benchFleetIndex returns an archive whose export index holds n synthetic
// entries over benchFleet devices (a record every second, 10 workflows, 20
// principals, every 50th refused at the agent) with each device's summary,
// and an empty quarantine: in EDGESEAL_BENCH_INDEX_DIR/fleet when set
// (filled once per n), else in a temporary directory.
func benchFleetIndex(b *testing.B, n int) *Archive {
	b.Helper()
	dir := b.TempDir()
	if d := os.Getenv("EDGESEAL_BENCH_INDEX_DIR"); d != "" {
		dir = d + "/fleet"
	}
	x, err := store.OpenIndex(b.Context(), store.IndexOptions{Dir: dir})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { x.Close() })
	a := &Archive{xi: &exportIndexer{x: x}, qidx: newQuarIndex(QuarantineLimits{}), quar: b.TempDir()}
	mark := []byte("bench-fleet-n/2") // /2: with policy keys
	if v, err := x.Get(b.Context(), mark); err == nil && len(v) == 8 && binary.BigEndian.Uint64(v) == uint64(n) {
		return a
	}
	start := time.Now().UTC().Add(-time.Duration(n) * time.Second)
	var ops []store.IndexOp
	spans := policySpans{}
	flush := func() {
		if err := x.Write(b.Context(), ops); err != nil {
			b.Fatal(err)
		}
		ops = ops[:0]
	}
	for i := range n {
		li := uint64(i / 50)
		at := start.Add(time.Duration(i) * time.Second)
		d := i % benchFleet
		e := &ExportEntry{
			Device: fmt.Sprintf("site%d/dev%d", d%50, d), Site: fmt.Sprintf("site%d", d%50), Export: fmt.Sprintf("exp-%09d", i),
			Seq: uint64(i), Type: "export", Status: StatusAccepted, Workflow: fmt.Sprintf("wf-%d", i%10), App: "n8n",
			Principal: fmt.Sprintf("p-%d", i%20), Classification: "internal", Time: at.Format(time.RFC3339Nano), at: at,
			Policy: fmt.Sprintf("sha256:%064x", i*4/n), Bundle: fmt.Sprintf("sha256:%064x", li), LogIndex: &li, raw: []byte(`{"v":1}`),
		}
		if i%50 == 49 {
			e.Type, e.Status, e.RefusedBy, e.Reason = "export.rejected", StatusRefused, RefusedByAgent, fmt.Sprintf("policy: reason %d", i%7)
		}
		eo, err := entryOps(e)
		if err != nil {
			b.Fatal(err)
		}
		ops = append(ops, eo...)
		spans.add(e)
		if len(ops) > 4000 {
			flush()
		}
	}
	pops, err := spans.ops(b.Context(), x.Get)
	if err != nil {
		b.Fatal(err)
	}
	ops = append(ops, pops...)
	ops = append(ops, store.IndexOp{Kind: store.IndexPut, Key: []byte{kVersion}, Value: []byte(indexKeysVersion)})
	for d := range benchFleet {
		s, _ := json.Marshal(DeviceSummary{Bundles: uint64(n / benchFleet / 50), Exports: uint64(n / benchFleet), LastAcceptedAt: time.Now().UTC().Format(time.RFC3339Nano)})
		ops = append(ops, store.IndexOp{Kind: store.IndexPut, Key: deviceKey(fmt.Sprintf("site%d/dev%d", d%50, d)), Value: s})
	}
	ops = append(ops, store.IndexOp{Kind: store.IndexPut, Key: mark, Value: binary.BigEndian.AppendUint64(nil, uint64(n))})
	flush()
	return a
}

// BenchmarkDashboardPages: the archive's side of the first view of each
// dashboard page at EDGESEAL_BENCH_EXPORTS entries (default 50000) over
// 1000 devices: the export search's first page (50 newest), the policy
// page (per-day counts by status and by reason over 30 days, the policy
// in force on every device), the fleet (device summaries, open alerts).
// Reports each page's p50 and p99.
func BenchmarkDashboardPages(b *testing.B) {
	n := benchN()
	a := benchFleetIndex(b, n)
	ctx := context.Background()
	to := time.Now().UTC()
	from := to.AddDate(0, 0, -29)
	pages := []struct {
		name string
		load func() error
	}{
		{"exports", func() error {
			p, err := a.SearchExports(ctx, ExportQuery{Limit: 50})
			if err == nil && len(p.Items) != 50 {
				err = fmt.Errorf("%d items", len(p.Items))
			}
			return err
		}},
		{"policy", func() error {
			for _, by := range []string{"status", "reason"} {
				if _, _, err := a.ExportStats(ctx, by, from, to); err != nil {
					return err
				}
			}
			ps, err := a.DevicePolicies(ctx, "")
			if err == nil && len(ps) != benchFleet {
				err = fmt.Errorf("policies of %d devices", len(ps))
			}
			return err
		}},
		{"fleet", func() error {
			if _, err := a.DeviceSummaries(ctx); err != nil {
				return err
			}
			_, err := a.OpenAlerts(ctx, 1000)
			return err
		}},
	}
	for _, p := range pages {
		b.Run(p.name, func(b *testing.B) {
			var lat []time.Duration
			for b.Loop() {
				t0 := time.Now()
				if err := p.load(); err != nil {
					b.Fatal(err)
				}
				lat = append(lat, time.Since(t0))
			}
			reportLatency(b, lat)
		})
	}
}
