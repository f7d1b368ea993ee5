package drainbench

import (
	"context"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/edgeseal/edgeseal/agent"
	"github.com/edgeseal/edgeseal/store"
	"github.com/edgeseal/edgeseal/sync"
	"github.com/edgeseal/edgeseal/sync/mqtttest"
)

// cpuTime is the CPU time (user and system) the process used so far: the
// agent's and the archive's side of the drain, not the broker's.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// outboxReadCPU is the process's CPU time reading every outbox bundle
// once as the publisher does (Core.OutboxGetDigest: the file read and
// decrypted into one reused buffer): the part of the agent's work that
// no drain can skip and paho's baseline does not do; the median of three
// passes.
func outboxReadCPU(b *testing.B, core *agent.Core, j *store.Journal) time.Duration {
	ctx := context.Background()
	var ids []string
	if err := j.OutboxIDs(ctx, func(id string) error { ids = append(ids, id); return nil }); err != nil {
		b.Fatal(err)
	}
	var buf []byte
	var runs []time.Duration
	for range 3 {
		c0 := cpuTime(b)
		for _, id := range ids {
			if _, _, ok, err := core.OutboxGetDigest(ctx, id, &buf); err != nil || !ok {
				b.Fatalf("outbox %s: ok %v, %v", id, ok, err)
			}
		}
		runs = append(runs, cpuTime(b)-c0)
	}
	slices.Sort(runs)
	return runs[1]
}

// idleCPU is the CPU time per second, in ms, the process uses over three
// seconds with nothing to send, once it is quiet (settle: the journal's
// flushes and compactions after the drain are over): the publisher
// connected, the outbox empty (its journal's background work, the
// runtime's and paho's timers). EDGESEAL_DRAIN_IDLE_CPUPROFILE writes a
// CPU profile of those seconds.
func idleCPU(b *testing.B, pub *sync.Publisher) float64 {
	if !pub.Stats().Connected {
		b.Fatal("publisher not connected after the drain")
	}
	settle(b)
	if out := envFile(b, "EDGESEAL_DRAIN_IDLE_CPUPROFILE"); out != nil {
		if hz := envInt("EDGESEAL_DRAIN_PROFILE_HZ"); hz > 0 {
			runtime.SetCPUProfileRate(hz)
		}
		if err := pprof.StartCPUProfile(out); err != nil {
			b.Fatal(err)
		}
		defer pprof.StopCPUProfile()
	}
	c0, t0 := cpuTime(b), time.Now()
	time.Sleep(3 * time.Second)
	return float64((cpuTime(b) - c0).Microseconds()) / 1e3 / time.Since(t0).Seconds()
}

// sysTime is the system part of cpuTime.
func sysTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Stime.Nano())
}

// settle waits until the process is idle (under 5% of a core over a
// quarter second; at most 30 s): the journal's background compactions
// would otherwise count in the next timed run's CPU.
func settle(b *testing.B) {
	for start := time.Now(); time.Since(start) < 30*time.Second; {
		c0 := cpuTime(b)
		time.Sleep(250 * time.Millisecond)
		if cpuTime(b)-c0 < 250*time.Millisecond/20 {
			return
		}
	}
}

// brokerCPU is the CPU time the broker process used so far.
func brokerCPU(b *testing.B, brk *mqtttest.Broker) time.Duration {
	d, err := brk.CPUTime()
	if err != nil {
		b.Fatal(err)
	}
	return d
}

// writeHeap writes a heap profile (allocations since the start: compare
// the one written before the drain with the one after, go tool pprof
// -base) to the file the environment variable k names, plus suffix.
func writeHeap(b *testing.B, k, suffix string) {
	f := os.Getenv(k)
	if f == "" {
		return
	}
	out, err := os.Create(f + suffix)
	if err != nil {
		b.Fatal(err)
	}
	defer out.Close()
	if err := pprof.Lookup("allocs").WriteTo(out, 0); err != nil {
		b.Fatal(err)
	}
}

// allocated is the bytes the process allocated on the Go heap so far.
func allocated() uint64 {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.TotalAlloc
}

// minorFaults is the process's page faults so far that needed no I/O
// (first touches of memory: fresh heap, after the runtime returned it).
func minorFaults(b *testing.B) int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return int64(ru.Minflt) // int32 on 32-bit targets
}

// envFile creates the file the environment variable k names, closed when
// the benchmark ends (after the deferred stops that write into it); nil
// when k is unset.
func envFile(b *testing.B, k string) *os.File {
	f := os.Getenv(k)
	if f == "" {
		return nil
	}
	out, err := os.Create(f)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { out.Close() })
	return out
}

// envInt reads a number from the environment (0 when unset).
func envInt(k string) int { n, _ := strconv.Atoi(os.Getenv(k)); return n }
