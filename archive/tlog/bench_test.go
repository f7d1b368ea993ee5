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
