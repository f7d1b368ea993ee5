package archive_test

import (
	"context"
	"testing"
	"time"

	"github.com/edgeseal/edgeseal/archive"
	"github.com/edgeseal/edgeseal/bundle/bundletest"
)

// waitIndexedTo waits until the export index covers size log entries.
func waitIndexedTo(t *testing.T, a *archive.Archive, size uint64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := a.WaitIndexed(ctx, size); err != nil {
		t.Fatalf("export index covers %d of %d log entries: %v", a.IndexedUpTo(), size, err)
	}
}

// indexedBy polls (without WaitIndexed, which ends the indexer's
// yielding) until the export index covers size log entries or 10 s
// passed, and returns what it covers.
func indexedBy(a *archive.Archive, size uint64) uint64 {
	for start := time.Now(); a.IndexedUpTo() < size && time.Since(start) < 10*time.Second; {
		time.Sleep(10 * time.Millisecond)
	}
	return a.IndexedUpTo()
}

// TestExportIndexYieldsToAdmission: while a bundle is being admitted the
// indexer leaves the accepted bundles unindexed (their receipts are
// answered all the same), and indexes them once admission is idle; it
// stays at most its lag bound behind the log, past its time bound it
// catches up whatever admission does, and a reader waiting for the index
// (WaitIndexed) has it catch up at once.
func TestExportIndexYieldsToAdmission(t *testing.T) {
	e := newEnv(t)
	c := newChain(t, 1, bundletest.Options{Records: 4})
	e.approve(c)
	next := func() {
		t.Helper()
		b, err := c.Next(t.Context(), 4)
		if err != nil {
			t.Fatal(err)
		}
		e.accept(c, b)
	}
	e.accept(c, c.Bundles[0])
	waitIndexed(t, e.a)

	t.Run("idle", func(t *testing.T) {
		defer archive.SetIndexYield(100, time.Hour)()
		release := archive.HoldAdmission(e.a)
		next()
		size := e.a.LogSize()
		// Woken by the commit, the indexer yields: nothing moves while
		// the admission is under way.
		time.Sleep(300 * time.Millisecond)
		if got := e.a.IndexedUpTo(); got >= size {
			release()
			t.Fatalf("export index covers %d of %d log entries while a bundle is admitted", got, size)
		}
		release()
		waitIndexedTo(t, e.a, size)
	})

	t.Run("lag", func(t *testing.T) {
		defer archive.SetIndexYield(2, time.Hour)()
		release := archive.HoldAdmission(e.a)
		defer release()
		from := e.a.IndexedUpTo()
		next()
		next()
		size := e.a.LogSize()
		if size < from+2 {
			t.Fatalf("log of %d entries after 2 bundles from %d", size, from)
		}
		// Two entries behind: the indexer indexes until it is one
		// behind, admission or not.
		if got := indexedBy(e.a, size-1); got != size-1 {
			t.Fatalf("export index covers %d of %d log entries, want %d", got, size, size-1)
		}
		time.Sleep(300 * time.Millisecond)
		if got := e.a.IndexedUpTo(); got != size-1 {
			t.Fatalf("export index covers %d of %d log entries, want %d (one behind) while a bundle is admitted", got, size, size-1)
		}
	})

	t.Run("time", func(t *testing.T) {
		waitIndexed(t, e.a)
		defer archive.SetIndexYield(100, 200*time.Millisecond)()
		release := archive.HoldAdmission(e.a)
		defer release()
		next()
		next()
		// Past the time bound it catches up with admission under way.
		if size, got := e.a.LogSize(), indexedBy(e.a, e.a.LogSize()); got != size {
			t.Fatalf("export index covers %d of %d log entries past the time bound", got, size)
		}
	})

	t.Run("waiter", func(t *testing.T) {
		defer archive.SetIndexYield(100, time.Hour)()
		release := archive.HoldAdmission(e.a)
		defer release()
		next()
		// A reader waiting for the index ends the yielding.
		waitIndexed(t, e.a)
	})
}
