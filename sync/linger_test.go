package sync

import (
	"context"
	"crypto/sha256"
	"fmt"
	"slices"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// TestReplyLinger: a reply waits for the replies to the other bundles in
// flight until half the window has answered (then at once), at most
// replyLinger; a reply that answers every bundle in flight, and an empty
// queue, wait for nothing; a stopped publisher stops waiting.
func TestReplyLinger(t *testing.T) {
	o := pubOptions("tcp://127.0.0.1:1", "dev1", newMemOutbox(), newArchiveKeys(t))
	o.Window = 8
	p, err := NewPublisher(o)
	if err != nil {
		t.Fatal(err)
	}
	setFlight := func(n int) {
		p.mu.Lock()
		clear(p.inflight)
		for i := range n {
			p.inflight[entryID(i)] = &flight{}
		}
		p.mu.Unlock()
	}
	setQueued := func(n int) {
		p.rmu.Lock()
		p.rqueue = make([]mqtt.Message, n)
		p.rmu.Unlock()
	}
	for _, c := range []struct {
		inflight, queued int
		ready            bool
	}{
		{0, 0, true}, {6, 0, true}, // nothing to handle
		{1, 1, true}, {3, 3, true}, {0, 2, true}, // every bundle in flight answered
		{6, 1, false}, {6, 3, false}, // others still expected
		{8, 4, true}, {8, 5, true}, // half the window
	} {
		setFlight(c.inflight)
		setQueued(c.queued)
		if got := p.replyBatchReady(); got != c.ready {
			t.Errorf("%d in flight, %d queued: ready %v, want %v", c.inflight, c.queued, got, c.ready)
		}
	}

	ctx := context.Background()
	setFlight(6)
	setQueued(1)
	t0 := time.Now()
	if !p.linger(ctx) {
		t.Fatal("linger: false without a stop")
	}
	if d := time.Since(t0); d < replyLinger {
		t.Errorf("one of 6 answered: handled after %v, want it to wait %v for the others", d, replyLinger)
	}

	// The reply that completes the batch ends the wait at once.
	go func() {
		time.Sleep(10 * time.Millisecond)
		setQueued(6)
		p.rwake <- struct{}{}
	}()
	setQueued(1)
	t0 = time.Now()
	if !p.linger(ctx) {
		t.Fatal("linger: false without a stop")
	}
	if d := time.Since(t0); d >= replyLinger {
		t.Errorf("every bundle answered: handled after %v, want at once", d)
	}

	setQueued(1)
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if p.linger(cctx) {
		t.Error("linger: true after the stop")
	}
}

// TestReceiptsJournaledInAnyOrder: receipts that came together out of
// order (replies delivered again after a reconnect come behind newer
// ones), for a callback that refuses a receipt until the one before it is
// journaled and a run for any receipt it refuses (as the agent's archive
// witness does): each is journaled, in as many passes as it takes, and
// every entry deleted.
func TestReceiptsJournaledInAnyOrder(t *testing.T) {
	keys := newArchiveKeys(t)
	ob := newMemOutbox()
	o := pubOptions("tcp://127.0.0.1:1", "dev1", ob, keys)
	var journaled []string
	calls := 0
	o.OnReceipts = func(_ context.Context, ids []string, _ [][]byte) error {
		calls++
		next := len(journaled)
		for k, id := range ids {
			if id != entryID(next+k) {
				return fmt.Errorf("receipt for %s before the one for %s", id, entryID(next+k))
			}
		}
		journaled = append(journaled, ids...)
		return nil
	}
	p, err := NewPublisher(o)
	if err != nil {
		t.Fatal(err)
	}
	const n = 4
	var payloads [][]byte
	for i := range n {
		data := bundleBytes(fmt.Sprint("any-order", i), 500)
		ob.put(entryID(i), data)
		d := sha256.Sum256(data)
		p.inflight[entryID(i)] = &flight{digest: d, order: uint64(i + 1)}
		payloads = append(payloads, keys.receipt(t, d, "site1/dev1"))
	}
	// Arrived as 3, 1, 0, 2.
	order := []int{3, 1, 0, 2}
	in := make([][]byte, n)
	for k, i := range order {
		in[k] = payloads[i]
	}
	errs := p.handleReplies(context.Background(), in)
	for k, err := range errs {
		if err != nil {
			t.Errorf("receipt %d (entry %d): %v", k, order[k], err)
		}
	}
	if want := []string{entryID(0), entryID(1), entryID(2), entryID(3)}; !slices.Equal(journaled, want) {
		t.Errorf("journaled %q, want %q", journaled, want)
	}
	if ob.len() != 0 || p.Stats().Delivered != n {
		t.Errorf("outbox %d entries left, delivered %d", ob.len(), p.Stats().Delivered)
	}
	t.Logf("%d callback calls", calls)
}
