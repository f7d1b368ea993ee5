package agentd

import (
	"context"
	"log/slog"
	gosync "sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgeseal/edgeseal/agent"
	"github.com/edgeseal/edgeseal/sync"
)

type fakeReporter struct {
	up  atomic.Bool
	got chan sync.DeviceAlert
}

func (f *fakeReporter) Stats() sync.Stats { return sync.Stats{Connected: f.up.Load()} }
func (f *fakeReporter) Alert(a sync.DeviceAlert) error {
	if _, err := a.Marshal(); err != nil {
		return err
	}
	f.got <- a
	return nil
}

// TestReportOutbox: no report while the sync connection is down; once it
// is up, a well-formed outbox.status report of the outbox's depth and
// oldest seal time at once and then every interval; none after it drops.
func TestReportOutbox(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	oldest := time.Date(2026, 12, 7, 8, 0, 0, 0, time.UTC)
	var depth atomic.Int64
	depth.Store(7)
	state := func(context.Context) (agent.OutboxState, error) {
		return agent.OutboxState{Depth: int(depth.Load()), Oldest: oldest}, nil
	}
	f := &fakeReporter{got: make(chan sync.DeviceAlert, 100)}
	var wg gosync.WaitGroup
	wg.Go(func() {
		reportOutbox(ctx, "site1", "dev1", state, f, 40*time.Millisecond, time.Now, slog.New(slog.DiscardHandler))
	})
	defer func() { cancel(); wg.Wait() }()

	select {
	case a := <-f.got:
		t.Fatalf("a report while the connection is down: %+v", a)
	case <-time.After(150 * time.Millisecond):
	}
	f.up.Store(true)
	next := func() sync.DeviceAlert {
		t.Helper()
		select {
		case a := <-f.got:
			return a
		case <-time.After(5 * time.Second):
			t.Fatal("no report while the connection is up")
		}
		return sync.DeviceAlert{}
	}
	a := next()
	if a.Kind != sync.AlertOutboxStatus || a.Site != "site1" || a.Device != "dev1" || a.Outbox == nil ||
		a.Outbox.Depth != 7 || a.Outbox.Oldest != "2026-12-07T08:00:00.000000Z" {
		t.Fatalf("report %+v", a)
	}
	depth.Store(0)
	for a.Outbox.Depth != 0 {
		a = next()
	}
	f.up.Store(false)
	time.Sleep(100 * time.Millisecond) // a report in flight when it dropped
	for len(f.got) > 0 {
		<-f.got
	}
	select {
	case a := <-f.got:
		t.Fatalf("a report after the connection dropped: %+v", a)
	case <-time.After(150 * time.Millisecond):
	}
}
