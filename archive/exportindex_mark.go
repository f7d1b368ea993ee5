package archive

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/edgeseal/edgeseal/store"
)

// The export index's watermark is written by compare-and-swap: every
// batch of the indexer (advance) carries an IndexExpect of the watermark
// it started from, so that of archive processes sharing one index (on a
// database, archive/sqlindex) following one log, exactly one indexes each
// log entry; the others' batches are refused whole
// (*store.IndexConflictError), nothing is counted twice, and they take up
// the index's watermark (reloadMark) and go on from there. Each pass of
// the indexer starts from the index's watermark too, so a process whose
// own view lags (an entry it cannot index: its bundle accepted by
// another process) follows the one that indexed it.

// errMarkMoved is a batch refused because the index's watermark is not
// the one the indexer started from: it was reloaded.
var errMarkMoved = errors.New("archive: export index: the watermark moved")

// markValue is the stored form of a watermark.
func markValue(m [2]uint64) []byte {
	return binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint64(nil, m[0]), m[1])
}

// setMark records the watermark m and wakes the waiters when it moved.
func (a *Archive) setMark(m [2]uint64) {
	a.xi.mu.Lock()
	defer a.xi.mu.Unlock()
	moved := !a.xi.markSet || a.xi.mark != m
	a.xi.mark, a.xi.markSet = m, true
	if moved {
		close(a.xi.changed)
		a.xi.changed = make(chan struct{})
	}
}

// reloadMark takes up the index's watermark (absent: nothing changes).
func (a *Archive) reloadMark(ctx context.Context) error {
	w, err := a.xi.x.Get(ctx, []byte{kWatermark})
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil
	case err != nil:
		return fmt.Errorf("archive: export index: %w", err)
	case len(w) != 16:
		return fmt.Errorf("archive: export index: watermark of %d bytes", len(w))
	}
	a.setMark([2]uint64{binary.BigEndian.Uint64(w), binary.BigEndian.Uint64(w[8:])})
	return nil
}

// advance writes ops with the new watermark in one batch, on the
// condition that the index still holds the watermark the indexer
// started from; errMarkMoved when it does not (reloaded).
func (a *Archive) advance(ctx context.Context, ops []store.IndexOp, li, off uint64) error {
	if h := indexHook.Load(); h != nil {
		if err := (*h)(li, off); err != nil {
			return err
		}
	}
	a.xi.mu.Lock()
	var from []byte // nil: no watermark yet
	if a.xi.markSet {
		from = markValue(a.xi.mark)
	}
	a.xi.mu.Unlock()
	batch := make([]store.IndexOp, 0, len(ops)+2)
	batch = append(batch, store.IndexOp{Kind: store.IndexExpect, Key: []byte{kWatermark}, Value: from})
	batch = append(batch, ops...)
	batch = append(batch, store.IndexOp{Kind: store.IndexPut, Key: []byte{kWatermark}, Value: markValue([2]uint64{li, off})})
	err := a.xi.x.Write(ctx, batch)
	if _, ok := errors.AsType[*store.IndexConflictError](err); ok {
		if rerr := a.reloadMark(ctx); rerr != nil {
			return rerr
		}
		return errMarkMoved
	}
	if err != nil {
		return fmt.Errorf("archive: export index: %w", err)
	}
	a.setMark([2]uint64{li, off})
	return nil
}
