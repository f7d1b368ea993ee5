package archive

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/edgeseal/edgeseal/bundle/custody"
	"github.com/edgeseal/edgeseal/bundle/wire"
	"github.com/edgeseal/edgeseal/store"
)

// The benchmarks' export index: n synthetic entries over benchFleet
// devices, one a second from benchStart (device i%1000, 10 workflows,
// 20 principals, every 50th an agent refusal with one of 7 reasons, 50
// entries a bundle, 4 policies over the whole span), with each device's
// summary and policy keys, as the indexer would write them
// (TestBenchIndexLoad checks that key for key). It is built with the
// store's bulk loader (Badger's StreamWriter) in key order, and cached
// in EDGESEAL_BENCH_INDEX_DIR/<benchIndexVersion>-<n> when that is set
// (a directory without its completion mark is rebuilt).

// benchFleet is the number of devices of the benchmarks' index.
const benchFleet = 1000

// benchIndexVersion names the dataset and key layout: change it with
// either, so that cached indexes are rebuilt.
const benchIndexVersion = "fleet6"

var benchStart = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// benchMark is the key of the completion mark (sorts before every
// index key prefix).
var benchMark = []byte("bench-index")

func benchDevice(d int) string { return fmt.Sprintf("site%d/dev%d", d%50, d) }

// benchEntry is entry i of n, made from a real record (as the indexer
// makes it).
func benchEntry(i, n int) *ExportEntry {
	li := uint64(i / 50)
	at := benchStart.Add(time.Duration(i) * time.Second)
	d := i % benchFleet
	r := &custody.Record{Seq: uint64(i), Type: custody.TypeExport, Time: at, Device: benchDevice(d),
		Actor: custody.Actor{Kind: "principal", ID: fmt.Sprintf("p-%d", i%20), Via: "api"}}
	export, wf, policy := fmt.Sprintf("exp-%09d", i), fmt.Sprintf("wf-%d", i%10), fmt.Sprintf("sha256:%064x", i*4/n)
	var err error
	if i%50 == 49 {
		r.Type = custody.TypeExportRejected
		err = r.SetBody(custody.RejectedBody{ExportID: export, App: "n8n", Workflow: wf, Policy: policy, Reason: fmt.Sprintf("policy: reason %d", i%7)})
	} else {
		err = r.SetExportBody(&custody.ExportBody{ExportID: export, App: "n8n", Workflow: wf, Purpose: "billing", Schema: "invoice@1",
			Classification: "internal", Retention: "standard", Destination: "s3://bucket", Policy: policy,
			Payload: custody.PayloadRef{Digest: fmt.Sprintf("sha256:%064x", i), Size: 1024, MediaType: "application/json", Canonicalization: "none"}})
	}
	if err != nil {
		panic(err)
	}
	raw, err := r.Marshal()
	if err != nil {
		panic(err)
	}
	if r, err = custody.ParseRecord(raw); err != nil {
		panic(err)
	}
	e, err := entryFrom(r, raw, benchRef(li))
	if err != nil {
		panic(err)
	}
	return e
}

// benchRef is what the entries of the benchmarks' bundle li say of it.
func benchRef(li uint64) bundleRef {
	at := benchStart.Add(time.Duration(li*50+49) * time.Second).Add(time.Minute)
	return bundleRef{digest: fmt.Sprintf("sha256:%064x", li), object: fmt.Sprintf("sha256/%064x", li),
		acceptedAt: wire.FormatTime(at), logIndex: li}
}

func benchSummary(d, n int) DeviceSummary {
	end := benchStart.Add(time.Duration(n) * time.Second)
	return DeviceSummary{Bundles: uint64(n / benchFleet / 50), Exports: uint64(n / benchFleet), LastAcceptedAt: end.Format(time.RFC3339Nano)}
}

// benchClass is the entries of one secondary key value: i from start by
// step, those keep allows (nil: all).
type benchClass struct {
	value       string
	start, step int
	keep        func(int) bool
}

// benchClasses are the values of field and their entries, in key order;
// nil for a field whose value rises with i (value names it).
func benchClasses(field byte, n int) (classes []benchClass, value func(int) string) {
	mod := func(m int, name func(int) string, keep func(int) bool) []benchClass {
		var cs []benchClass
		for r := range min(m, n) {
			cs = append(cs, benchClass{value: name(r), start: r, step: m, keep: keep})
		}
		return cs
	}
	refused := func(i int) bool { return i%50 == 49 }
	switch field {
	case fieldTime:
		return nil, func(int) string { return "" }
	case fieldApp:
		return nil, func(int) string { return "n8n" }
	case fieldExport:
		return nil, func(i int) string { return fmt.Sprintf("exp-%09d", i) }
	case fieldLogIndex:
		return nil, func(i int) string { return strconv.Itoa(i / 50) }
	case fieldDevice:
		classes = mod(benchFleet, benchDevice, nil)
	case fieldSite:
		classes = mod(50, func(r int) string { return fmt.Sprintf("site%d", r) }, nil)
	case fieldPrincipal:
		classes = mod(20, func(r int) string { return fmt.Sprintf("p-%d", r) }, nil)
	case fieldWorkflow:
		classes = mod(10, func(r int) string { return fmt.Sprintf("wf-%d", r) }, nil)
	case fieldClassification: // a refusal has none
		classes = []benchClass{{value: "internal", step: 1, keep: func(i int) bool { return !refused(i) }}}
	case fieldStatus:
		classes = []benchClass{{value: StatusRefused, step: 1, keep: refused}} // accepted: none (statusKeyed)
	case fieldReason:
		for k := range 7 {
			classes = append(classes, benchClass{value: fmt.Sprintf("policy: reason %d", k), start: 49, step: 50,
				keep: func(i int) bool { return i%7 == k }})
		}
	}
	slices.SortFunc(classes, func(a, b benchClass) int { return bytes.Compare(comp(nil, a.value), comp(nil, b.value)) })
	return classes, nil
}

// benchFields are the secondary key fields in key order.
var benchFields = []byte{fieldTime, fieldApp, fieldClassification, fieldDevice, fieldExport,
	fieldLogIndex, fieldPrincipal, fieldReason, fieldSite, fieldStatus, fieldWorkflow}

// putSorted puts keys (any order) with their values.
func putSorted(l *store.IndexLoader, kv map[string][]byte) error {
	keys := make([]string, 0, len(kv))
	for k := range kv {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if err := l.Put([]byte(k), kv[k]); err != nil {
			return err
		}
	}
	return nil
}

// loadBenchIndex builds the benchmarks' index of n entries in dir (absent
// or empty) with the bulk loader.
func loadBenchIndex(ctx context.Context, dir string, n int) error {
	l, err := store.LoadIndex(ctx, store.IndexOptions{Dir: dir})
	if err != nil {
		return err
	}
	if err := fillBenchIndex(l, n); err != nil {
		l.Abort()
		return err
	}
	return l.Finish()
}

// benchGen makes the keys of the benchmarks' entries without building
// each entry.
type benchGen struct {
	n                              int
	devs, wfs, principals, reasons []string
	micros                         uint64
}

func newBenchGen(n int) *benchGen {
	g := &benchGen{n: n, micros: uint64(benchStart.UnixMicro())}
	for d := range benchFleet {
		g.devs = append(g.devs, benchDevice(d))
	}
	for r := range 20 {
		g.principals = append(g.principals, fmt.Sprintf("p-%d", r))
		if r < 10 {
			g.wfs = append(g.wfs, fmt.Sprintf("wf-%d", r))
		}
		if r < 7 {
			g.reasons = append(g.reasons, fmt.Sprintf("policy: reason %d", r))
		}
	}
	return g
}

// pk appends the primary key suffix of entry i to dst.
func (g *benchGen) pk(dst []byte, i int) []byte {
	dst = comp(dst, g.devs[i%benchFleet])
	dst = binary.BigEndian.AppendUint16(dst, 13)
	dst = append(dst, "exp-"...)
	var num [9]byte
	for k, v := 8, i; k >= 0; k-- {
		num[k] = byte('0' + v%10)
		v /= 10
	}
	dst = append(dst, num[:]...)
	dst = binary.BigEndian.AppendUint64(dst, uint64(i/50))
	return binary.BigEndian.AppendUint64(dst, uint64(i))
}

func (g *benchGen) timeKey(i int) uint64 { return g.micros + uint64(i)*1e6 }

func fillBenchIndex(l *store.IndexLoader, n int) error {
	g := newBenchGen(n)
	// 'b' || be64 (bundles) < 'b' (the mark) < 'd' < 'e' < 'n' < 'p' < 's' < 'v' < 'x'.
	bundles := uint64((n + 49) / 50)
	for li := range bundles {
		ops, err := bundleRefOps(benchRef(li))
		if err != nil {
			return err
		}
		if err := l.Put(ops[0].Key, ops[0].Value); err != nil {
			return err
		}
	}
	if err := l.Put(benchMark, []byte(benchIndexVersion+"-"+strconv.Itoa(n))); err != nil {
		return err
	}
	kv := map[string][]byte{}
	for d := range benchFleet {
		s, _ := json.Marshal(benchSummary(d, n))
		kv[string(deviceKey(benchDevice(d)))] = s
	}
	if err := putSorted(l, kv); err != nil {
		return err
	}
	devs := make([]int, benchFleet)
	for d := range devs {
		devs[d] = d
	}
	slices.SortFunc(devs, func(a, b int) int { return bytes.Compare(comp(nil, benchDevice(a)), comp(nil, benchDevice(b))) })
	var key []byte
	for _, prefix := range []byte{kEntry, kBundleLog, kPolicy, kStat, kVersion} {
		switch prefix {
		case kBundleLog: // in log index order: the digests are of it, zero-padded
			for li := range bundles {
				ops, err := bundleRefOps(benchRef(li))
				if err != nil {
					return err
				}
				if err := l.Put(ops[1].Key, ops[1].Value); err != nil {
					return err
				}
			}
		case kEntry:
			for _, d := range devs {
				for i := d; i < n; i += benchFleet {
					key = g.pk(append(key[:0], prefix), i)
					v := append([]byte{entryRecord}, benchEntry(i, n).raw...)
					if err := l.Put(key, v); err != nil {
						return err
					}
				}
			}
		case kPolicy:
			type span struct{ first, last, count int }
			byDev := map[[2]int]*span{}
			for i := range n {
				k := [2]int{i % benchFleet, i * 4 / n}
				if s := byDev[k]; s != nil {
					s.last, s.count = i, s.count+1
				} else {
					byDev[k] = &span{i, i, 1}
				}
			}
			spans := policySpans{}
			for k, s := range byDev {
				first, last := benchStart.Add(time.Duration(s.first)*time.Second), benchStart.Add(time.Duration(s.last)*time.Second)
				spans[string(policyKey(benchDevice(k[0]), fmt.Sprintf("sha256:%064x", k[1])))] = &policySpan{
					First: wire.FormatTime(first), Last: wire.FormatTime(last), Exports: uint64(s.count), first: first, last: last}
			}
			ops, err := spans.ops(context.Background(), func(context.Context, []byte) ([]byte, error) { return nil, store.ErrNotFound })
			if err != nil {
				return err
			}
			for _, op := range ops {
				if err := l.Put(op.Key, op.Value); err != nil {
					return err
				}
			}
		case kStat:
			counts := map[string]uint64{}
			var days []string
			for i := range n {
				di := i / 86400
				for len(days) <= di {
					days = append(days, benchStart.AddDate(0, 0, len(days)).Format(time.DateOnly))
				}
				day := days[di]
				status, reason, class := StatusAccepted, "", "internal"
				if i%50 == 49 {
					status, reason, class = StatusRefused, g.reasons[i%7], ""
				}
				for _, s := range [][2]string{{"status", status}, {"reason", reason}, {"workflow", g.wfs[i%10]}, {"principal", g.principals[i%20]},
					{"device", g.devs[i%benchFleet]}, {"classification", class}} {
					if s[1] != "" {
						counts[string(statKey(s[0], day, s[1]))]++
					}
				}
			}
			kv := map[string][]byte{}
			for k, c := range counts {
				kv[k] = binary.BigEndian.AppendUint64(nil, c)
			}
			if err := putSorted(l, kv); err != nil {
				return err
			}
		case kVersion:
			if err := l.Put([]byte{kVersion}, []byte(indexKeysVersion)); err != nil {
				return err
			}
		}
	}
	for _, f := range benchFields {
		classes, value := benchClasses(f, n)
		put := func(i int, v string) error {
			key = binary.BigEndian.AppendUint64(comp(append(key[:0], kSecondary, f), v), g.timeKey(i))
			return l.Put(g.pk(key, i), nil)
		}
		if value != nil {
			for i := range n {
				if err := put(i, value(i)); err != nil {
					return err
				}
			}
			continue
		}
		for _, c := range classes {
			for i := c.start; i < n; i += c.step {
				if c.keep == nil || c.keep(i) {
					if err := put(i, c.value); err != nil {
						return err
					}
				}
			}
		}
	}
	return nil
}

// benchArchive opens the benchmarks' index of n entries (building it
// first when it is not cached) as an Archive with an empty quarantine.
func benchArchive(b *testing.B, n int) *Archive {
	b.Helper()
	dir, note, err := benchIndex(b.Context(), b.TempDir(), n)
	if err != nil {
		b.Fatal(err)
	}
	if strings.Contains(note, " built ") {
		b.Log(note)
	}
	x, err := store.OpenIndex(b.Context(), store.IndexOptions{Dir: dir})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { x.Close() })
	return &Archive{xi: &exportIndexer{x: x}, qidx: newQuarIndex(QuarantineLimits{}), quar: b.TempDir()}
}

// benchIndex returns the directory of the benchmarks' index of n
// entries: EDGESEAL_BENCH_INDEX_DIR/<benchIndexVersion>-<n> when that is
// set, else a folder in tmp; built there unless it holds the complete
// index already. note says which, and how long a build took.
func benchIndex(ctx context.Context, tmp string, n int) (dir, note string, err error) {
	dir = filepath.Join(tmp, "index")
	if root := os.Getenv("EDGESEAL_BENCH_INDEX_DIR"); root != "" {
		dir = filepath.Join(root, benchIndexVersion+"-"+strconv.Itoa(n))
	}
	if benchIndexDone(ctx, dir, n) {
		return dir, fmt.Sprintf("bench index: %d exports cached in %s", n, dir), nil
	}
	if err := os.RemoveAll(dir); err != nil {
		return "", "", err
	}
	t0 := time.Now()
	if err := loadBenchIndex(ctx, dir, n); err != nil {
		return "", "", err
	}
	return dir, fmt.Sprintf("bench index: %d exports built in %.1f s in %s", n, time.Since(t0).Seconds(), dir), nil
}

// benchIndexDone reports whether dir holds the complete index of n.
func benchIndexDone(ctx context.Context, dir string, n int) bool {
	if _, err := os.Stat(dir); err != nil {
		return false
	}
	x, err := store.OpenIndex(ctx, store.IndexOptions{Dir: dir})
	if err != nil {
		return false
	}
	defer x.Close()
	v, err := x.Get(ctx, benchMark)
	return err == nil && string(v) == benchIndexVersion+"-"+strconv.Itoa(n)
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

// TestBenchIndexLoad: the bulk-loaded benchmark index holds exactly the
// keys and values the indexer's operations (entryOps, policy spans,
// device summaries, the marker) write for the same entries.
func TestBenchIndexLoad(t *testing.T) {
	ctx := t.Context()
	const n = 2600
	dir := t.TempDir()
	if err := loadBenchIndex(ctx, filepath.Join(dir, "bulk"), n); err != nil {
		t.Fatal(err)
	}
	ref, err := store.OpenIndex(ctx, store.IndexOptions{Dir: filepath.Join(dir, "ops")})
	if err != nil {
		t.Fatal(err)
	}
	spans := policySpans{}
	ops := []store.IndexOp{{Kind: store.IndexPut, Key: benchMark, Value: []byte(benchIndexVersion + "-" + strconv.Itoa(n))},
		{Kind: store.IndexPut, Key: []byte{kVersion}, Value: []byte(indexKeysVersion)}}
	flush := func() {
		if err := ref.Write(ctx, ops); err != nil {
			t.Fatal(err)
		}
		ops = ops[:0]
	}
	for i := range n {
		e := benchEntry(i, n)
		eo, err := entryOps(e)
		if err != nil {
			t.Fatal(err)
		}
		ops = append(ops, eo...)
		if i%50 == 0 {
			bops, err := bundleRefOps(benchRef(uint64(i / 50)))
			if err != nil {
				t.Fatal(err)
			}
			ops = append(ops, bops...)
		}
		spans.add(e)
		if len(ops) > 2000 {
			flush()
		}
	}
	pops, err := spans.ops(ctx, ref.Get)
	if err != nil {
		t.Fatal(err)
	}
	ops = append(ops, pops...)
	for d := range benchFleet {
		s, _ := json.Marshal(benchSummary(d, n))
		ops = append(ops, store.IndexOp{Kind: store.IndexPut, Key: deviceKey(benchDevice(d)), Value: s})
	}
	flush()
	bulk, err := store.OpenIndex(ctx, store.IndexOptions{Dir: filepath.Join(dir, "bulk")})
	if err != nil {
		t.Fatal(err)
	}
	defer bulk.Close()
	defer ref.Close()
	dump := func(x store.IndexStore) [][2]string {
		var out [][2]string
		if err := x.Scan(ctx, store.IndexRange{Lo: []byte{0}}, func(k, v []byte) bool {
			out = append(out, [2]string{string(k), string(v)})
			return true
		}); err != nil {
			t.Fatal(err)
		}
		return out
	}
	got, want := dump(bulk), dump(ref)
	if len(got) != len(want) {
		t.Errorf("bulk index has %d keys, the indexer's operations %d", len(got), len(want))
	}
	for i := range min(len(got), len(want)) {
		if got[i] != want[i] {
			t.Fatalf("key %d: bulk %x = %.80q, want %x = %.80q", i, got[i][0], got[i][1], want[i][0], want[i][1])
		}
	}
}

// BenchmarkIndexBuild builds (or finds cached) the benchmarks' index of
// EDGESEAL_BENCH_EXPORTS entries in EDGESEAL_BENCH_INDEX_DIR (a
// temporary folder when that is unset), so that bench/report builds it
// before the benchmarks that read it run (and the writeback of it is
// over). It is a benchmark, not a test, so that go test never runs it;
// bench/report runs it once (-test.benchtime=1x) and reads the line it
// logs.
func BenchmarkIndexBuild(b *testing.B) {
	n := benchN()
	t0 := time.Now()
	_, note, err := benchIndex(b.Context(), b.TempDir(), n)
	if err != nil {
		b.Fatal(err)
	}
	b.Log(note)
	b.ReportMetric(time.Since(t0).Seconds(), "s/build")
}
