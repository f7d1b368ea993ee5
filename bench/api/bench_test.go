package apibench

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// exportBody is a POST /v1/exports body whose data is a 1 KiB JSON object.
func exportBody(n int64) []byte {
	head := fmt.Sprintf(`{"id":"%d","blob":"`, n)
	data := head + strings.Repeat("x", 1024-len(head)-2) + `"}`
	return fmt.Appendf(nil, `{"workflow":"records","app":"bench","purpose":"benchmark","classification":"internal","destination":"archive","data":%s}`, data)
}

// run spreads b.N operations over clients goroutines; op does one
// operation of count items and returns its error. It reports rate (items
// per second, in unit), p50/p99 latency of one operation and the agent's
// peak RSS.
func run(b *testing.B, a *agent, clients int, per int, unit string, op func(c *conn, seq int64, count int) error) {
	conns := make([]*conn, clients)
	for i := range conns {
		c, err := dial(a.socket)
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		conns[i] = c
	}
	var next atomic.Int64
	var failed atomic.Pointer[error]
	lat := make([][]time.Duration, clients)
	var wg sync.WaitGroup
	u0, err := a.usage()
	if err != nil {
		b.Fatal(err)
	}
	c0 := selfCPU()
	b.ResetTimer()
	for i := range clients {
		wg.Go(func() {
			c := conns[i]
			for {
				start := next.Add(int64(per)) - int64(per)
				if start >= int64(b.N) || failed.Load() != nil {
					return
				}
				count := int(min(int64(per), int64(b.N)-start))
				t0 := time.Now()
				if err := op(c, start, count); err != nil {
					failed.CompareAndSwap(nil, &err)
					return
				}
				lat[i] = append(lat[i], time.Since(t0))
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	clientCPU := selfCPU() - c0
	if p := failed.Load(); p != nil {
		b.Fatalf("%v\nagent log:\n%.4000s", *p, a.stderr)
	}
	var all []time.Duration
	for _, l := range lat {
		all = append(all, l...)
	}
	slices.Sort(all)
	q := func(p float64) float64 {
		return float64(all[min(len(all)-1, int(p*float64(len(all))))]) / float64(time.Millisecond)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), unit)
	b.ReportMetric(q(0.50), "p50-ms")
	b.ReportMetric(q(0.99), "p99-ms")
	// The agent's CPU time per item: comparable across runs on a busy
	// machine, where the rate is not.
	u1, err := a.usage()
	if err != nil {
		b.Fatal(err)
	}
	cpu, sys := u1.user+u1.sys-u0.user-u0.sys, u1.sys-u0.sys
	b.ReportMetric(float64(cpu)/float64(time.Microsecond)/float64(b.N), "agent-cpu-us/item")
	if cpu > 0 {
		b.ReportMetric(100*float64(sys)/float64(cpu), "agent-sys-%")
	}
	b.ReportMetric(float64(u1.faults-u0.faults)/float64(b.N), "agent-faults/item")
	// The load generator's own CPU time per item: it shares the cores.
	b.ReportMetric(float64(clientCPU)/float64(time.Microsecond)/float64(b.N), "client-cpu-us/item")
	rss, err := a.peakRSS()
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(rss)/(1<<20), "agent-rss-MiB")
}

// selfCPU is the CPU time (user and system) this process has used.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkAPIExport: single exports (1 KiB JSON) over the unix socket
// from 1, 8 and 64 clients; one op is one export answered 201.
func BenchmarkAPIExport(b *testing.B) { benchExports(b, getAgent) }

// BenchmarkAPIExportEncrypted is BenchmarkAPIExport against an agent
// that seals every payload to an archive content key (HPKE,
// ML-KEM-768+X25519, encryption.content_key) before it journals it:
// beside it, the cost of end-to-end encryption per export.
func BenchmarkAPIExportEncrypted(b *testing.B) { benchExports(b, getEncryptedAgent) }

func benchExports(b *testing.B, get func(*testing.B) *agent) {
	for _, clients := range []int{1, 8, 64} {
		b.Run(fmt.Sprintf("clients=%d", clients), func(b *testing.B) {
			a := get(b)
			run(b, a, clients, 1, "exports/s", func(c *conn, seq int64, _ int) error {
				_, err := c.post("/v1/exports", "application/json", exportBody(seq))
				return err
			})
		})
	}
}

// BenchmarkAPIBatch: NDJSON batches of 1 KiB JSON exports from 4 clients;
// one op is one record, answered 201 on its line.
func BenchmarkAPIBatch(b *testing.B) {
	for _, lines := range []int{100, 1000} {
		b.Run(fmt.Sprintf("lines=%d", lines), func(b *testing.B) {
			a := getAgent(b)
			run(b, a, 4, lines, "records/s", func(c *conn, seq int64, count int) error {
				var body bytes.Buffer
				for i := range count {
					body.Write(exportBody(seq + int64(i)))
					body.WriteByte('\n')
				}
				out, err := c.post("/v1/exports:batch", "application/x-ndjson", body.Bytes())
				if err != nil {
					return err
				}
				n := 0
				sc := bufio.NewScanner(bytes.NewReader(out))
				sc.Buffer(nil, 1<<20)
				for sc.Scan() {
					// The agent writes each answer with encoding/json in
					// BatchAnswer's field order; a line that does not say
					// 201 right after its line number is decoded for the
					// error.
					if bytes.HasPrefix(sc.Bytes(), fmt.Appendf(nil, `{"line":%d,"status":201,`, n+1)) {
						n++
						continue
					}
					var ans struct {
						Status int             `json:"status"`
						Error  json.RawMessage `json:"error"`
					}
					if err := json.Unmarshal(sc.Bytes(), &ans); err != nil {
						return fmt.Errorf("batch answer line: %w", err)
					}
					if ans.Status != http.StatusCreated {
						return fmt.Errorf("batch line answered %d: %s", ans.Status, ans.Error)
					}
					n++
				}
				if n != count {
					return fmt.Errorf("batch of %d lines answered %d", count, n)
				}
				return nil
			})
		})
	}
}
