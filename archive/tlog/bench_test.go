package tlog_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/edgeseal/edgeseal/archive/tlog"
	"github.com/edgeseal/edgeseal/archive/tlog/tlogtest"
)

// BenchmarkAppend appends receipt-sized entries (about 250 bytes) from 32
// or 256 goroutines, as the archive's pipeline does from its groups, to the
// Tessera POSIX log and to the Badger journal, and reports the process
// CPU time per entry (user+system) beside the wall time.
func BenchmarkAppend(b *testing.B) {
	for _, bc := range []struct {
		name string
		open func(testing.TB, string, note.Signer, note.Verifier) tlog.Log
	}{
		{"posix", openPOSIX},
		{"journal", openJournal},
	} {
		for _, par := range []int{16, 128} {
			b.Run(fmt.Sprintf("%s/appenders=%d", bc.name, 2*par), func(b *testing.B) {
				s, v := tlogtest.Keys(b, "edgeseal-archive")
				l := bc.open(b, b.TempDir(), s, v)
				defer l.Close(context.Background())
				entry := make([]byte, 250)
				var n atomic.Uint64
				b.SetParallelism(par)
				cpu0 := cpuTime()
				b.ResetTimer()
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						e := fmt.Appendf(entry[:0:0], "%0250d", n.Add(1))
						if _, err := l.Append(context.Background(), e); err != nil {
							b.Error(err)
							return
						}
					}
				})
				b.StopTimer()
				b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/float64(b.N), "cpu-µs/entry")
			})
		}
	}
}

// cpuTime is the process's user and system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkReceiptLatency is the archive's path of one group of receipts
// on the POSIX log: append a batch of 8 entries (its appends are one at
// a time), then wait for the checkpoint that covers them; ns/op is the
// time a group waits for its receipts, at the defaults and at Tessera's
// older ones here.
func BenchmarkReceiptLatency(b *testing.B) {
	for _, bc := range []struct {
		name             string
		interval, maxAge time.Duration
	}{
		{"defaults", 0, 0},
		{"interval=250ms/age=20ms", 250 * time.Millisecond, 20 * time.Millisecond},
	} {
		b.Run(bc.name, func(b *testing.B) {
			s, v := tlogtest.Keys(b, "edgeseal-archive")
			l, err := tlog.OpenPOSIX(b.Context(), tlog.POSIXOptions{Dir: b.TempDir(), Signer: s, Verifier: v,
				CheckpointInterval: bc.interval, BatchMaxAge: bc.maxAge})
			if err != nil {
				b.Fatal(err)
			}
			defer l.Close(context.Background())
			batch := make([][]byte, 8)
			n := 0
			b.ResetTimer()
			for b.Loop() {
				for i := range batch {
					n++
					batch[i] = fmt.Appendf(nil, "%0250d", n)
				}
				idx, err := l.AppendBatch(b.Context(), batch)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := l.AwaitCheckpoint(b.Context(), idx[len(idx)-1]+1); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
