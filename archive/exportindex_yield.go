package archive

import (
	"context"
	"sync/atomic"
	"time"
)

// Admission before indexing. Admission is custody: a device's outbox
// empties only as its receipts come back. The export index is derived
// from the log and the stored bundles (searches lag, nothing is
// acknowledged on it), and indexing a bundle costs about as much CPU as
// verifying it (an entry, the record, a dozen search keys and counters
// for each of its exports). On cores that admission and indexing share,
// the indexer yields to admission: while a bundle is being admitted
// (verified, stored, logged, receipted) it waits, until admission is
// idle, the log is indexMaxLag entries ahead of the index, or it has
// waited indexMaxDefer; past either bound it indexes whatever admission
// does, until it has caught up. So a burst (a site's long-offline
// drain) is receipted first and indexed as soon as it is over, and a
// sustained load is indexed at most about indexMaxLag entries or
// indexMaxDefer behind the log. A reader waiting for the index to
// cover the log (WaitIndexed: a search by legal-hold case, which must
// see a hold just logged) ends the yielding at once.

// Bounds of the indexer's yielding: log entries and nanoseconds (set by
// tests).
var indexMaxLag, indexMaxDefer atomic.Int64

func init() {
	indexMaxLag.Store(256)
	indexMaxDefer.Store(int64(5 * time.Second))
}

// admissionGauge counts the admissions under way (Admit calls, and
// bundles admitted and not yet answered: Archive.inflight) for the
// indexer.
type admissionGauge struct {
	calls atomic.Int64  // admit calls under way
	idle  chan struct{} // a token when an admission ended (capacity 1)
}

func newAdmissionGauge() admissionGauge { return admissionGauge{idle: make(chan struct{}, 1)} }

// begin counts an admit call; the caller defers ended.
func (g *admissionGauge) begin() { g.calls.Add(1) }

// ended is an admit call returning or a bundle answered: the indexer
// looks again.
func (g *admissionGauge) ended() {
	select {
	case g.idle <- struct{}{}:
	default:
	}
}

// endCall ends a call counted by begin.
func (g *admissionGauge) endCall() {
	g.calls.Add(-1)
	g.ended()
}

// admitting reports whether a bundle is being admitted or committed.
func (a *Archive) admitting() bool {
	if a.adm.calls.Load() > 0 {
		return true
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.inflight) > 0
}

// yieldToAdmission waits, before the indexer's next batch, while
// admission is under way, within the bounds above; mark is the next log
// entry to index. It returns ctx's error when ctx ends.
func (a *Archive) yieldToAdmission(ctx context.Context, mark uint64) error {
	xi := a.xi
	behind := func() bool {
		return xi.waiters.Load() > 0 || int64(a.log.size()-min(mark, a.log.size())) >= indexMaxLag.Load()
	}
	if xi.catchUp || behind() || !a.admitting() {
		return nil
	}
	if xi.deferFrom.IsZero() {
		xi.deferFrom = time.Now()
	}
	for a.admitting() && !behind() {
		left := time.Duration(indexMaxDefer.Load()) - time.Since(xi.deferFrom)
		if left <= 0 {
			xi.catchUp = true // until this pass reaches the log's end
			return nil
		}
		t := time.NewTimer(left)
		select {
		case <-a.adm.idle:
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		}
		t.Stop()
	}
	return nil
}

// caughtUp ends a deferral: the index reached the log's end.
func (xi *exportIndexer) caughtUp() { xi.deferFrom, xi.catchUp = time.Time{}, false }
