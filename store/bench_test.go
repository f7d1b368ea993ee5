package store

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// record1K is a 1 KiB record embedding seq and prev.
func record1K(seq uint64, prev [32]byte) ([]byte, error) {
	b := fmt.Appendf(make([]byte, 0, 1024), `{"seq":%d,"prev":"%x","body":"`, seq, prev)
	b = append(b, strings.Repeat("x", 1024-len(b)-2)...)
	return append(b, `"}`...), nil
}

// runWriters runs op b.N times from writers goroutines and reports
// appends/s and CPU time per append.
func runWriters(b *testing.B, writers int, op func() error) {
	runBatches(b, writers, 1, "appends/s", "cpu-us/append", func(int64, int64) error { return op() })
}

// runBatches spreads b.N items over writers goroutines, per items a call:
// op(start, n) handles items start to start+n-1. It reports items per
// second (in rate) and the process's CPU time per item (in cpu; Badger's
// background work included: what the journal costs the cores it shares
// with the rest).
func runBatches(b *testing.B, writers, per int, rate, cpu string, op func(start, n int64) error) {
	var next atomic.Int64
	var wg sync.WaitGroup
	var failed atomic.Pointer[error]
	b.ResetTimer()
	cpu0 := processCPU(b)
	for range writers {
		wg.Go(func() {
			for {
				start := next.Add(int64(per)) - int64(per)
				if start >= int64(b.N) || failed.Load() != nil {
					return
				}
				if err := op(start, min(int64(per), int64(b.N)-start)); err != nil {
					failed.CompareAndSwap(nil, &err)
					return
				}
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	used := processCPU(b) - cpu0
	if p := failed.Load(); p != nil {
		b.Fatal(*p)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), rate)
	b.ReportMetric(float64(used.Microseconds())/float64(b.N), cpu)
}

// processCPU is the CPU time this process has used so far.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// benchMemoryLimit applies the soft memory limit the agent runs the
// journal with on a small device (GOMEMLIMIT=48MiB, set by the agent's
// unit) unless GOMEMLIMIT is set in the environment. Badger's compaction
// buffers are plain Go allocations; without a limit the GC lets the heap
// grow to twice its peak live size.
func benchMemoryLimit(b *testing.B) {
	if os.Getenv("GOMEMLIMIT") != "" {
		return
	}
	old := debug.SetMemoryLimit(48 << 20)
	b.Cleanup(func() { debug.SetMemoryLimit(old) })
}

// BenchmarkAppend: synced journal appends of 1 KiB records from N writers,
// unencrypted and, as the agent runs it, encrypted at rest.
func BenchmarkAppend(b *testing.B) {
	for _, w := range []int{1, 8, 64} {
		b.Run(fmt.Sprintf("writers=%d", w), func(b *testing.B) { benchAppend(b, w, nil) })
	}
	key := make([]byte, 32)
	b.Run("encrypted/writers=64", func(b *testing.B) { benchAppend(b, 64, key) })
}

func benchAppend(b *testing.B, w int, key []byte) {
	benchMemoryLimit(b)
	j, err := Open(context.Background(), Options{Dir: b.TempDir(), Logger: testLogger(b), EncryptionKey: key})
	if err != nil {
		b.Fatal(err)
	}
	defer j.Close()
	e := Entry{Build: record1K}
	runWriters(b, w, func() error {
		_, err := j.Append(context.Background(), e)
		return err
	})
	reportCommits(b, j)
}

// BenchmarkAppendBatch: the journal's part of the API's batch endpoint,
// alone: 4 writers each journaling 1000 entries at a time with
// AppendBatch (cut at TooLargeError.Fit, as the agent does), each entry a
// 1 KiB record and a 1 KiB payload of its own, encrypted at rest, on the
// agent's memtable size. One op is one entry.
func BenchmarkAppendBatch(b *testing.B) { benchAppendBatch(b, false) }

// BenchmarkAppendBatchKeyed is BenchmarkAppendBatch with an idempotency
// key on every entry, as the agent journals its exports (all new).
func BenchmarkAppendBatchKeyed(b *testing.B) { benchAppendBatch(b, true) }

func benchAppendBatch(b *testing.B, keyed bool) {
	benchMemoryLimit(b)
	ctx := context.Background()
	j, err := Open(ctx, Options{Dir: b.TempDir(), Logger: testLogger(b), EncryptionKey: make([]byte, 32), MemTableSize: 4 << 20})
	if err != nil {
		b.Fatal(err)
	}
	defer j.Close()
	const writers, lines = 4, 1000
	var appendSplit func(es []Entry) error
	appendSplit = func(es []Entry) error {
		_, err := j.AppendBatch(ctx, es)
		if tl := (*TooLargeError)(nil); errors.As(err, &tl) && len(es) > 1 {
			mid := len(es) / 2
			if tl.Fit > 0 && tl.Fit < len(es) {
				mid = tl.Fit
			}
			if err := appendSplit(es[:mid]); err != nil {
				return err
			}
			return appendSplit(es[mid:])
		}
		return err
	}
	runBatches(b, writers, lines, "records/s", "cpu-us/record", func(start, n int64) error {
		es := make([]Entry, n)
		for i := range es {
			p := fmt.Appendf(make([]byte, 0, 1024), "payload %d ", start+int64(i))
			p = append(p, strings.Repeat("p", 1024-len(p))...)
			es[i] = Entry{Build: record1K, Payloads: []Payload{{Digest: sha256.Sum256(p), Data: p}}}
			if keyed {
				es[i].Key = fmt.Appendf(nil, "export/bench/%d", start+int64(i))
			}
		}
		return appendSplit(es)
	})
	if got := j.Size(); got != uint64(b.N) {
		b.Fatalf("journal size %d after %d entries", got, b.N)
	}
	reportCommits(b, j)
}

// reportCommits reports the records per group commit.
func reportCommits(b *testing.B, j *Journal) {
	if n := j.commits.Load(); n > 0 {
		b.ReportMetric(float64(j.Size())/float64(n), "appends/commit")
	}
}

// BenchmarkBadgerBaseline: raw synced Badger transactions writing the same
// 1 KiB records from N goroutines, with the journal's Badger options
// (Badger groups concurrent synced commits itself).
func BenchmarkBadgerBaseline(b *testing.B) {
	for _, w := range []int{1, 8, 64} {
		b.Run(fmt.Sprintf("writers=%d", w), func(b *testing.B) {
			benchMemoryLimit(b)
			o := Options{Dir: b.TempDir(), Logger: testLogger(b)}
			if err := o.setDefaults(); err != nil {
				b.Fatal(err)
			}
			db, err := badger.Open(badgerOptions(o, &badgerLogger{l: o.Logger}))
			if err != nil {
				b.Fatal(err)
			}
			defer db.Close()
			var seq atomic.Uint64
			runWriters(b, w, func() error {
				n := seq.Add(1) - 1
				rec, _ := record1K(n, [32]byte{})
				return db.Update(func(txn *badger.Txn) error {
					return txn.Set(binary.BigEndian.AppendUint64([]byte{pfxRecord}, n), rec)
				})
			})
		})
	}
}

// BenchmarkOpen opens journals of 200k and 1M records; Open reads a few
// keys and never rescans, so this stays far under a second.
func BenchmarkOpen(b *testing.B) {
	for _, n := range []uint64{200_000, 1_000_000} {
		b.Run(fmt.Sprintf("records=%d", n), func(b *testing.B) { benchOpen(b, n) })
	}
}

// fillClosedJournal writes a journal of n small records in dir and
// closes it cleanly.
func fillClosedJournal(b *testing.B, dir string, n uint64) {
	ctx := context.Background()
	j, err := Open(ctx, Options{Dir: dir, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	es := make([]Entry, 256)
	for i := range es {
		es[i] = Entry{Build: build("open-bench")}
	}
	for j.Size() < n {
		k := min(uint64(len(es)), n-j.Size())
		if _, err := j.AppendBatch(ctx, es[:k]); err != nil {
			b.Fatal(err)
		}
	}
	if err := j.Close(); err != nil {
		b.Fatal(err)
	}
}

func benchOpen(b *testing.B, n uint64) {
	dir := b.TempDir()
	ctx := context.Background()
	fillClosedJournal(b, dir, n)
	runtime.GC()
	for b.Loop() {
		j, err := Open(ctx, Options{Dir: dir})
		if err != nil {
			b.Fatal(err)
		}
		if j.Size() != n {
			b.Fatalf("size %d", j.Size())
		}
		b.StopTimer()
		j.Close()
		b.StartTimer()
	}
	b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/open")
}
