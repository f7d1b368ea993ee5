package archive_test

import (
	"context"
	"syscall"
	"testing"
	"time"

	"github.com/edgeseal/edgeseal/archive"
	"github.com/edgeseal/edgeseal/bundle/bundletest"
	"github.com/edgeseal/edgeseal/bundle/wire"
)

// BenchmarkAccept takes one device's chain of drain-sized bundles (1000
// records of 512-byte exports, about 1.8 MB each) into a fresh archive,
// serially (Receive, each bundle answered before the next is read) and
// pipelined (AdmitHashed each as it comes, as the daemon's subscriber
// does with the assembler's digest, then the answers). It reports wall and process CPU time per bundle:
// the pipeline overlaps one bundle's fsyncs with the next one's
// verification, so it gains wall time only where the CPU is not the
// limit.
func BenchmarkAccept(b *testing.B) {
	const bundles = 16
	c, err := bundletest.NewChain(context.Background(), nil, bundles, bundletest.Options{Records: 1000, PayloadSize: 512})
	if err != nil {
		b.Fatal(err)
	}
	raws := make([][]byte, bundles)
	var size int64
	for i, bd := range c.Bundles {
		if raws[i], err = bd.Bytes(); err != nil {
			b.Fatal(err)
		}
		size += int64(len(raws[i]))
	}
	run := func(b *testing.B, take func(a *archive.Archive)) {
		var wall, cpu time.Duration
		for range b.N {
			b.StopTimer()
			a, err := archive.Open(context.Background(), archive.Options{Dir: b.TempDir(), Key: testKey})
			if err != nil {
				b.Fatal(err)
			}
			approveB(b, a, c)
			b.StartTimer()
			c0, t0 := cpuTime(), time.Now()
			take(a)
			wall += time.Since(t0)
			cpu += cpuTime() - c0
			b.StopTimer()
			if n := a.LogSize(); n != bundles {
				b.Fatalf("log size %d, want %d", n, bundles)
			}
			a.Close()
		}
		per := float64(b.N * bundles)
		b.ReportMetric(float64(wall.Microseconds())/1e3/per, "ms/bundle")
		b.ReportMetric(float64(cpu.Microseconds())/1e3/per, "cpu-ms/bundle")
		b.ReportMetric(float64(size*int64(b.N))/1e6/wall.Seconds(), "MB/s")
		b.ReportMetric(0, "ns/op")
	}
	b.Run("serial", func(b *testing.B) {
		run(b, func(a *archive.Archive) {
			for _, r := range raws {
				if _, err := a.Receive(context.Background(), c.Opts.Site, c.Opts.Device, r); err != nil {
					b.Fatal(err)
				}
			}
		})
	})
	b.Run("pipelined", func(b *testing.B) {
		run(b, func(a *archive.Archive) {
			ts := make([]*archive.Ticket, len(raws))
			for i, r := range raws {
				ts[i] = a.AdmitHashed(context.Background(), c.Opts.Site, c.Opts.Device, wire.HashBytes(r))
			}
			for _, t := range ts {
				if _, err := t.Wait(context.Background()); err != nil {
					b.Fatal(err)
				}
			}
		})
	})
}

// approveB enrolls and approves the chain's device.
func approveB(b *testing.B, a *archive.Archive, c *bundletest.Chain) {
	raw, err := c.Trust.Marshal()
	if err != nil {
		b.Fatal(err)
	}
	req, err := archive.ParseEnrollRequest(raw)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := a.Devices().Enroll(context.Background(), req); err != nil {
		b.Fatal(err)
	}
	if _, err := a.Devices().Approve(context.Background(), c.DeviceName(), c.Trust.KeyID, "bench"); err != nil {
		b.Fatal(err)
	}
}

// cpuTime is the process's CPU time (user and system) so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
