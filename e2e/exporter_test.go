package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/edgeseal/edgeseal/agent"
)

// startClients runs n goroutines; client c calls next(c, i) for i = 0,
// 1, ... until next returns false or stop is called. stop waits for them.
func startClients(n int, next func(c, i int) bool) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	for c := range n {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-done:
					return
				default:
				}
				if !next(c, i) {
					return
				}
			}
		})
	}
	var once sync.Once
	return func() { once.Do(func() { close(done); wg.Wait() }) }
}

// exporter keeps clients exporting invoices as n8n through the agent's
// socket until stopped, and records what was answered 201 (export id ->
// journal seq).
type exporter struct {
	mu    sync.Mutex
	acked map[string]uint64
	fail  []string
	stop  func()
}

// startExporter starts clients exporting: client c's n-th export has the
// id idOf(c, n) and the next follows after pause(). acked are exports
// answered before, counted with the new ones.
func startExporter(t *testing.T, a *agentDir, clients int, acked map[string]uint64, idOf func(c, n int) string, pause func() time.Duration) *exporter {
	e := &exporter{acked: map[string]uint64{}}
	for k, v := range acked {
		e.acked[k] = v
	}
	sock := unixClient(a.socket)
	e.stop = startClients(clients, func(c, n int) bool {
		id := idOf(c, n)
		body := fmt.Appendf(nil, `{"id":%q,"workflow":"invoices-daily","app":"n8n","classification":"internal","destination":"archive","data":`+e2eInvoice+`}`, id, n)
		r, err := do(t, sock, "POST", "http://agent/v1/exports", tokN8N, "application/json", body)
		var rc agent.ExportReceipt
		e.mu.Lock()
		defer e.mu.Unlock()
		if err != nil || r.status != http.StatusCreated || json.Unmarshal(r.body, &rc) != nil || rc.ExportID != id {
			e.fail = append(e.fail, fmt.Sprintf("%s: %d %s %v", id, r.status, r.body, err))
			return false
		}
		e.acked[id] = rc.Seq
		time.Sleep(pause())
		return true
	})
	return e
}

// count is how many exports were answered 201, or -1 once one was not.
func (e *exporter) count() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.fail) > 0 {
		return -1
	}
	return len(e.acked)
}

// end stops the clients and returns what was answered 201 and the
// highest journal seq; it fails when an export was not answered 201,
// with logs after the first failure.
func (e *exporter) end(t *testing.T, logs string) (map[string]uint64, uint64) {
	t.Helper()
	e.stop()
	if len(e.fail) > 0 {
		t.Fatalf("%d exports not answered 201, first: %s\n%s", len(e.fail), e.fail[0], logs)
	}
	var maxSeq uint64
	for _, s := range e.acked {
		maxSeq = max(maxSeq, s)
	}
	return e.acked, maxSeq
}
