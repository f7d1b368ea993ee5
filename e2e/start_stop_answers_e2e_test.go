package e2e

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestAgentStartStopAnswers: while the real agent starts, every answer to
// an export is 503 not_ready with Retry-After: 1 until the first 201;
// while it stops (SIGTERM), every answer is 201 or 503 not_ready with
// Retry-After: 1 until its listener is gone; a client that retries on
// those answers and on a failed connection loses nothing.
func TestAgentStartStopAnswers(t *testing.T) {
	needAgent(t)
	a := newAgentDir(t, agentOpts{sealEvery: 1000, sealInterval: "1h", maxBody: "64 KiB"})
	c := unixClient(a.socket)
	export := func(id string) (httpReply, error) {
		body := fmt.Appendf(nil, `{"id":%q,"workflow":"invoices-daily","app":"n8n","classification":"internal","destination":"archive","data":%s}`,
			id, fmt.Sprintf(e2eInvoice, 7))
		return do(t, c, "POST", "http://agent/v1/exports", tokN8N, "application/json", body)
	}
	notReady := func(r httpReply) bool {
		return r.status == http.StatusServiceUnavailable && r.header.Get("Retry-After") == "1" && strings.Contains(string(r.body), `"not_ready"`)
	}

	begin := time.Now()
	p := a.start(t, false)
	var firstAnswer time.Duration
	waiting := 0
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no 201 within 60s\n%s", p.stderr)
		}
		r, err := export("start-probe")
		if err != nil {
			continue // not listening yet
		}
		if firstAnswer == 0 {
			firstAnswer = time.Since(begin)
		}
		if r.status == http.StatusCreated {
			break
		}
		if !notReady(r) {
			t.Fatalf("while starting: %d Retry-After %q %s", r.status, r.header.Get("Retry-After"), r.body)
		}
		waiting++
	}
	t.Logf("start: no listener for %v after the process started, then %d answers 503 not_ready, then 201 at %v",
		firstAnswer.Round(time.Millisecond), waiting, time.Since(begin).Round(time.Millisecond))

	stopped := make(chan struct{})
	go func() { defer close(stopped); p.stop() }()
	accepted, refused := 0, 0
	for i := 0; ; i++ {
		select {
		case <-stopped:
			t.Logf("stop: %d exports accepted and %d answered 503 not_ready after SIGTERM", accepted, refused)
			return
		default:
		}
		r, err := export(fmt.Sprintf("stop-probe-%d", i))
		switch {
		case err != nil:
			time.Sleep(5 * time.Millisecond)
		case r.status == http.StatusCreated:
			accepted++
		case notReady(r):
			refused++
		default:
			t.Fatalf("while stopping: %d Retry-After %q %s", r.status, r.header.Get("Retry-After"), r.body)
		}
	}
}
