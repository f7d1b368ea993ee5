package sync

import (
	"context"
	"crypto/sha256"
	"fmt"
	"testing"
)

// TestHeldShrinksWindow: a bundle the archive answered held (a replica
// waiting for the device's previous bundle) halves the window, once for
// the bundles in flight when it was halved (their held answers say the
// same thing again), again for a bundle sent after that, never below
// one; each delivery grows it back by one, up to Window; the scan sends
// no more than the window in force.
func TestHeldShrinksWindow(t *testing.T) {
	keys := newArchiveKeys(t)
	ob := newMemOutbox()
	o := pubOptions("tcp://127.0.0.1:1", "dev1", ob, keys)
	o.Window = 32
	o.RetryHeld = -1
	p, err := NewPublisher(o)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	data := map[string][]byte{}
	for i := range 40 {
		id := entryID(i)
		data[id] = bundleBytes(fmt.Sprint("shrink", i), 300)
		ob.put(id, data[id])
	}
	fly := func(i int) {
		id := entryID(i)
		p.sendOrder++
		p.inflight[id] = &flight{digest: sha256.Sum256(data[id]), order: p.sendOrder, epoch: p.stats.Delivered}
	}
	held := func(i int) {
		t.Helper()
		if err := p.handleReply(ctx, keys.rejection(t, sha256.Sum256(data[entryID(i)]), "site1/dev1", "held", HeldCheck)); err != nil {
			t.Fatal(err)
		}
	}
	deliver := func(i int) {
		t.Helper()
		if err := p.handleReply(ctx, keys.receipt(t, sha256.Sum256(data[entryID(i)]), "site1/dev1")); err != nil {
			t.Fatal(err)
		}
	}
	window := func(want int) {
		t.Helper()
		if got := p.Stats().Window; got != want {
			t.Fatalf("window %d, want %d", got, want)
		}
	}
	window(32)
	for i := range 8 {
		fly(i)
	}
	held(4)
	window(16)
	held(5) // in flight when the window was halved: no second halving
	window(16)
	fly(8)
	held(8) // sent after: halved again
	window(8)
	for i := 9; i < 20; i++ {
		fly(i)
		held(i)
	}
	window(1)
	deliver(0)
	window(2)
	p.mu.Lock()
	clear(p.inflight)
	p.mu.Unlock()
	if got, err := p.scan(ctx); err != nil || len(got) != 2 {
		t.Fatalf("scan with a window of 2 and nothing in flight: %d entries, %v", len(got), err)
	}
	p.mu.Lock()
	p.window = 31
	p.mu.Unlock()
	for i := 1; i <= 3; i++ {
		fly(i)
		deliver(i)
	}
	window(32)
}
