package api

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/edgeseal/edgeseal/agent"
	"github.com/edgeseal/edgeseal/agent/config"
)

// heldCore holds every ingest until release is closed; entered hears of
// each one.
type heldCore struct {
	*fakeCore
	entered chan struct{}
	release chan struct{}
}

func (c *heldCore) Ingest(ctx context.Context, p *config.Principal, via string, req agent.IngestRequest) (agent.ExportReceipt, error) {
	c.entered <- struct{}{}
	<-c.release
	return c.fakeCore.Ingest(ctx, p, via, req)
}

func (c *heldCore) IngestBatch(ctx context.Context, p *config.Principal, via string, lines []agent.BatchLine) ([]agent.BatchResult, error) {
	c.entered <- struct{}{}
	<-c.release
	return c.fakeCore.IngestBatch(ctx, p, via, lines)
}

// wantNotReady wants 503 not_ready with Retry-After: NotReadyRetryAfter.
func wantNotReady(t *testing.T, what string, r reply) {
	t.Helper()
	if r.status != 503 || r.err.Code != CodeNotReady || r.header.Get("Retry-After") != "1" {
		t.Fatalf("%s: %d Retry-After %q %s, want 503 not_ready with Retry-After: 1", what, r.status, r.header.Get("Retry-After"), r.body)
	}
}

// While the agent starts, every call but /healthz answers 503 not_ready
// with Retry-After, so a client knows when to try again.
func TestNotReadyRetryAfter(t *testing.T) {
	hs, _, _ := testServer(t)
	good := `{"id":"a1","workflow":"w","app":"n8n","data":{"k":1}}`
	wantNotReady(t, "export while starting", call(t, hs, "POST", "/v1/exports", tokExporter, "application/json", good))
	wantNotReady(t, "batch while starting", call(t, hs, "POST", "/v1/exports:batch", tokExporter, NDJSONType, good+"\n"))
	wantNotReady(t, "readyz while starting", call(t, hs, "GET", "/readyz", "", "", ""))
	if r := call(t, hs, "GET", "/healthz", "", "", ""); r.status != 200 {
		t.Fatalf("healthz while starting: %d", r.status)
	}
}

// Drain lets the call already in the core finish and answer 201, answers
// every new call 503 not_ready with Retry-After while it waits, and
// returns once the core is left alone; with the context done first it
// says so.
func TestDrain(t *testing.T) {
	hs, fc, s := testServer(t)
	hc := &heldCore{fakeCore: fc, entered: make(chan struct{}, 1), release: make(chan struct{})}
	s.SetCore(hc)
	good := `{"id":"a1","workflow":"w","app":"n8n","data":{"k":1}}`
	first := make(chan reply, 1)
	go func() { first <- call(t, hs, "POST", "/v1/exports", tokExporter, "application/json", good) }()
	<-hc.entered

	short, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := s.Drain(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("drain with a call held in the core: %v, want the deadline", err)
	}
	drained := make(chan error, 1)
	go func() { drained <- s.Drain(context.Background()) }()
	wantNotReady(t, "export while draining", call(t, hs, "POST", "/v1/exports", tokExporter, "application/json", `{"id":"a2","workflow":"w","app":"n8n","data":1}`))
	wantNotReady(t, "readyz while draining", call(t, hs, "GET", "/readyz", "", "", ""))
	select {
	case err := <-drained:
		t.Fatalf("drain returned with a call in the core: %v", err)
	case <-time.After(50 * time.Millisecond):
	}
	close(hc.release)
	if r := <-first; r.status != 201 {
		t.Fatalf("the call in flight: %d %s", r.status, r.body)
	}
	if err := <-drained; err != nil {
		t.Fatalf("drain: %v", err)
	}
	wantNotReady(t, "export after the drain", call(t, hs, "POST", "/v1/exports", tokExporter, "application/json", good))
}
