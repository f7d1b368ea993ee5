package agent

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/edgeseal/edgeseal/agent/config"
	"github.com/edgeseal/edgeseal/agent/policy"
	"github.com/edgeseal/edgeseal/bundle/payloadcipher"
	"github.com/edgeseal/edgeseal/store"
	"github.com/edgeseal/edgeseal/tpm"
	"github.com/edgeseal/edgeseal/tpm/simulator"
)

// BenchmarkExportEncryption drives the agent's export path in process
// (Core.Ingest, as the API calls it, under the test policy over a real
// journal encrypted at rest and the simulated TPM, 8 callers, a seal
// every 1000 exports, as the agent's sealer does) with 1 KiB payloads, in clear and sealed to a content key (payload
// cipher version 2). One core takes turns in rounds of 1000 exports,
// its content key off and on, so drift on a shared machine hits both
// alike; cpu-us/export is the process's CPU time per export, its seals
// included (noisy on a shared machine); allocB/export and allocs/export
// (heap allocations) and wchar/export (bytes written through write
// calls: the outbox's bundles, not Badger's mapped logs) do not depend
// on the load.
func BenchmarkExportEncryption(b *testing.B) {
	c := openBenchCore(b)
	k, err := payloadcipher.DeriveKey([]byte("export benchmark"))
	if err != nil {
		b.Fatal(err)
	}
	ck := &ContentKey{Key: k.Public(), Seq: 1}
	const round = 1000
	var cpu [2]time.Duration
	var n [2]int
	var wbytes, allocs, abytes [2]uint64
	data := []byte(strings.Repeat("x", 1024))
	b.ResetTimer()
	for i := 0; n[0] < b.N || n[1] < b.N; i++ {
		k := i % 2
		if k == 0 {
			c.content.Store(nil)
		} else {
			c.content.Store(ck)
		}
		c0 := processCPU()
		w0, m0 := ioWchar(), memStats()
		benchExports(b, c, [2]string{"p", "e"}[k], n[k], round, data)
		if res, err := c.Seal(context.Background()); err != nil || res == nil {
			b.Fatalf("seal: %v", err)
		}
		cpu[k] += processCPU() - c0
		w1, m1 := ioWchar(), memStats()
		wbytes[k] += w1 - w0
		allocs[k] += m1.Mallocs - m0.Mallocs
		abytes[k] += m1.TotalAlloc - m0.TotalAlloc
		n[k] += round
	}
	b.StopTimer()
	p, e := float64(cpu[0].Microseconds())/float64(n[0]), float64(cpu[1].Microseconds())/float64(n[1])
	b.ReportMetric(p, "plain-cpu-us/export")
	b.ReportMetric(e, "enc-cpu-us/export")
	b.ReportMetric(100*(e-p)/p, "enc-+%")
	for k, name := range []string{"plain", "enc"} {
		b.ReportMetric(float64(wbytes[k])/float64(n[k]), name+"-wchar/export")
		b.ReportMetric(float64(allocs[k])/float64(n[k]), name+"-allocs/export")
		b.ReportMetric(float64(abytes[k])/float64(n[k]), name+"-allocB/export")
	}
}

// benchPrincipal may export to the test policy's monthly-report workflow.
var benchPrincipal = &config.Principal{Name: "appsmith", Roles: []config.Role{config.RoleExporter}}

func benchExports(b *testing.B, c *Core, tag string, first, n int, data []byte) {
	var next atomic.Int64
	var failed atomic.Pointer[error]
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= n || failed.Load() != nil {
					return
				}
				d := append(fmt.Appendf(nil, "%09d,", first+i), data[10:]...)
				_, err := c.Ingest(context.Background(), benchPrincipal, "api", IngestRequest{
					ID: fmt.Sprintf("%s-%d", tag, first+i), Workflow: "monthly-report", App: "bench", Purpose: "benchmark",
					Classification: "internal", Destination: "archive", MediaType: "text/csv", Data: d,
				})
				if err != nil {
					failed.CompareAndSwap(nil, &err)
					return
				}
			}
		})
	}
	wg.Wait()
	if p := failed.Load(); p != nil {
		b.Fatal(*p)
	}
}

// openBenchCore opens a core over a new journal (encrypted at rest with
// the TPM's data key, as the agent opens it) and the simulated TPM.
func openBenchCore(b *testing.B) *Core {
	ctx := context.Background()
	dir := b.TempDir()
	t, err := tpm.Open(ctx, "simulator:"+filepath.Join(dir, "sim"), tpm.Options{StateDir: filepath.Join(dir, "tpm"), Simulator: simulator.Open, Create: true})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { t.Close() })
	key, err := t.DataKey(ctx)
	if err != nil {
		b.Fatal(err)
	}
	j, err := store.Open(ctx, store.Options{Dir: filepath.Join(dir, "journal"), EncryptionKey: key})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { j.Close() })
	pol, err := policy.Load("policy/testdata/policy.yaml")
	if err != nil {
		b.Fatal(err)
	}
	c, err := Open(ctx, Options{Site: "bench", Device: "dev-1", SealEvery: 1 << 30, Policy: pol}, j, t)
	if err != nil {
		b.Fatal(err)
	}
	return c
}

// processCPU is the CPU time (user and system) this process has used.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func memStats() runtime.MemStats {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m
}

// ioWchar is the bytes this process has passed to write calls (mapped
// files' pages not included).
func ioWchar() uint64 {
	b, _ := os.ReadFile("/proc/self/io")
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "wchar: "); ok {
			n, _ := strconv.ParseUint(v, 10, 64)
			return n
		}
	}
	return 0
}
