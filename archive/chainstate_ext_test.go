package archive_test

import (
	"testing"
	"time"

	"github.com/edgeseal/edgeseal/archive"
	"github.com/edgeseal/edgeseal/bundle/bundletest"
	"github.com/edgeseal/edgeseal/bundle/wire"
)

// TestForkAfterReopen: a fork against checkpoints accepted before a
// restart is an alarm as before it (they are looked up in the
// chain-state store, not remembered from a replay).
func TestForkAfterReopen(t *testing.T) {
	e := newEnv(t)
	dev, err := bundletest.NewSoft()
	if err != nil {
		t.Fatal(err)
	}
	a, err := bundletest.NewChain(t.Context(), dev, 3, bundletest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := bundletest.NewChain(t.Context(), dev, 2, bundletest.Options{Start: time.Date(2026, 11, 26, 3, 0, 0, 0, time.UTC)})
	if err != nil {
		t.Fatal(err)
	}
	e.approve(a)
	for i := range 3 {
		e.accept(a, a.Bundles[i])
	}
	e.reopen()
	for i := range 2 { // sizes of the first two accepted, other roots
		rj := e.refused(a.Opts.Site, a.Opts.Device, raw(t, b.Bundles[i]), archive.CheckFork)
		if !rj.Rejection.Alarm {
			t.Fatalf("fork of bundle %d after a restart without alarm", i)
		}
	}
	next, err := a.Next(t.Context(), 4)
	if err != nil {
		t.Fatal(err)
	}
	e.accept(a, next)
}

// TestDuplicateAfterReopen: a malleated copy of a bundle accepted before
// a restart is refused naming it; the bundle itself gets its receipt.
func TestDuplicateAfterReopen(t *testing.T) {
	e := newEnv(t)
	c := newChain(t, 2, bundletest.Options{})
	e.approve(c)
	first := receiptOf(t, e, e.accept(c, c.Bundles[0]))
	e.accept(c, c.Bundles[1])
	e.reopen()
	e.requireDuplicate(c.Opts.Site, c.Opts.Device, doubleSigned(t, c.Bundles[0]), wire.FormatHash(sha256Sum(raw(t, c.Bundles[0]))))
	if again := receiptOf(t, e, e.accept(c, c.Bundles[0])); again.LogIndex != first.LogIndex {
		t.Fatalf("a repeat after a restart got log index %d, want %d", again.LogIndex, first.LogIndex)
	}
}
