package api

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgeseal/edgeseal/agent"
	"github.com/edgeseal/edgeseal/agent/policy"
	"github.com/edgeseal/edgeseal/bundle/custody"
	"github.com/edgeseal/edgeseal/store"
	"github.com/edgeseal/edgeseal/tpm"
	"github.com/edgeseal/edgeseal/tpm/simulator"
)

// realCore opens a real core over a real journal and the simulator TPM,
// with the example policy.
func realCore(t testing.TB) (*agent.Core, *store.Journal) {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	pol, err := policy.Load(filepath.Join("..", "policy", "testdata", "policy.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	tp, err := tpm.Open(ctx, "simulator:"+filepath.Join(dir, "sim"), tpm.Options{StateDir: filepath.Join(dir, "tpm"), Simulator: simulator.Open, Create: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tp.Close() })
	key, err := tp.DataKey(ctx)
	if err != nil {
		t.Fatal(err)
	}
	j, err := store.Open(ctx, store.Options{Dir: filepath.Join(dir, "journal"), EncryptionKey: key})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { j.Close() })
	c, err := agent.Open(ctx, agent.Options{Site: "site-a", Device: "dev-1", Policy: pol}, j, tp)
	if err != nil {
		t.Fatal(err)
	}
	return c, j
}

// unauthRecords returns the bodies of the export.rejected records of
// unauthenticated callers.
func unauthRecords(t *testing.T, j *store.Journal) (bodies []custody.RejectedBody, raws []string) {
	t.Helper()
	err := j.Records(context.Background(), 0, j.Size(), func(_ uint64, raw []byte) error {
		r, err := custody.ParseRecord(raw)
		if err != nil {
			return err
		}
		if r.Type != custody.TypeExportRejected || r.Actor.ID != "unauthenticated" {
			return nil
		}
		var b custody.RejectedBody
		if err := json.Unmarshal(r.Body, &b); err != nil {
			return err
		}
		bodies, raws = append(bodies, b), append(raws, string(raw))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return bodies, raws
}

// Unauthenticated export calls journal SHA-256 digests of their header
// text, never the text; at most UnauthenticatedPerDay of them a UTC day,
// then one record saying the cap was reached, then nothing more that day
// (counted through Options.Unjournaled); the next day journals again.
func TestUnauthenticatedDigestsAndDailyCap(t *testing.T) {
	core, j := realCore(t)
	var mu sync.Mutex
	now := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	tick := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	var dropped atomic.Int64
	s := New(Options{UnauthenticatedPerDay: 3, Now: clock, Unjournaled: func() { dropped.Add(1) }})
	s.SetCore(core)
	hs := httptest.NewServer(s.Handler())
	t.Cleanup(hs.Close)

	wf, app, id := strings.Repeat("w", 1000), strings.Repeat("a", 1000), "x"+strings.Repeat("i", 127)
	post := func() reply {
		return call(t, hs, "POST", "/v1/exports", "bad-token", "text/csv", "a,b\n",
			HeaderWorkflow, wf, HeaderApp, app, HeaderID, id)
	}
	for i := range 3 {
		if r := post(); r.status != 401 || r.err.Seq == nil {
			t.Fatalf("call %d: %d %s, want a journaled 401", i, r.status, r.body)
		}
		tick(time.Second)
	}
	for i := range 4 {
		if r := post(); r.status != 401 || r.err.Seq != nil {
			t.Fatalf("call %d over the cap: %d %s, want a 401 not journaled", i, r.status, r.body)
		}
		tick(time.Second)
	}
	if n := dropped.Load(); n != 4 {
		t.Fatalf("%d refusals counted as not journaled, want 4", n)
	}
	bodies, raws := unauthRecords(t, j)
	if len(bodies) != 4 {
		t.Fatalf("%d unauthenticated records, want 3 and the cap record:\n%s", len(bodies), strings.Join(raws, "\n"))
	}
	hexOf := func(s string) string { d := sha256.Sum256([]byte(s)); return hex.EncodeToString(d[:]) }
	for i, b := range bodies[:3] {
		raw := raws[i]
		if strings.Contains(raw, "wwwwwwww") || strings.Contains(raw, "aaaaaaaa") || strings.Contains(raw, "iiiiiiii") ||
			b.Workflow != "sha256:"+hexOf(wf) || b.App != "sha256:"+hexOf(app) || !strings.Contains(b.Reason, hexOf(id)) {
			t.Fatalf("record %d: %s", i, raw)
		}
		if len(raw) > 1024 {
			t.Fatalf("record %d is %d bytes", i, len(raw))
		}
	}
	if !strings.Contains(bodies[3].Reason, "daily cap") || !strings.Contains(bodies[3].Reason, "2026-03-01") {
		t.Fatalf("cap record: %s", raws[3])
	}
	// The next UTC day journals again.
	tick(24 * time.Hour)
	if r := post(); r.status != 401 || r.err.Seq == nil {
		t.Fatalf("next day: %d %s", r.status, r.body)
	}
	if bodies, _ := unauthRecords(t, j); len(bodies) != 5 {
		t.Fatalf("%d unauthenticated records after the next day's call, want 5", len(bodies))
	}
}
