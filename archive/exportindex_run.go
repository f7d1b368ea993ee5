package archive

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/edgeseal/edgeseal/bundle/archivesig"
	"github.com/edgeseal/edgeseal/bundle/custody"
	"github.com/edgeseal/edgeseal/bundle/wire"
	"github.com/edgeseal/edgeseal/internal/fsutil"
	"github.com/edgeseal/edgeseal/store"
)

// indexChunk bounds the records one index batch covers (a bundle of more
// is indexed in several batches, each with its watermark).
const indexChunk = 256

// indexTick is the indexer's pass interval when nothing wakes it (a
// variable for tests).
var indexTick = 2 * time.Second

// indexHook, when set (tests), runs before each index batch; an error
// stops the indexer as a crash would.
var indexHook atomic.Pointer[func(logIndex, off uint64) error]

// exportIndexer follows the archive log into the export index.
type exportIndexer struct {
	x    store.IndexStore
	own  bool // Close closes x (Open opened it)
	wake chan struct{}
	done chan struct{}

	mu      sync.Mutex
	mark    [2]uint64     // the watermark: next log index, records done in it
	markSet bool          // the index holds a watermark (mark is its value)
	changed chan struct{} // closed and replaced when mark moves
	stuck   bool          // the last pass stopped on a bundle not accepted
	// ls is the log state as last read for a bundle purged before it was
	// indexed (purgedSkeleton; the indexer's goroutine only).
	ls *logState
	// deferFrom is when the indexer began to yield to admission, zero
	// when it is not yielding; catchUp: it yielded indexMaxDefer and
	// indexes until it reaches the log's end (exportindex_yield.go; the
	// indexer's goroutine only).
	deferFrom time.Time
	catchUp   bool
	// waiters counts the WaitIndexed calls under way: the indexer does
	// not yield to admission while one waits.
	waiters atomic.Int32
}

// openExportIndex opens the export index (Options.ExportIndex, else
// Dir/search) and starts the indexer. An index Badger refuses to open
// (store.IndexDamagedError) is derived data: it is set aside as
// Dir/search.damaged-<time> and rebuilt from the archive log and the
// stored bundles (and the access log's keys from the access log), with
// an error logged; ExportIndexRebuilt then names it.
func (a *Archive) openExportIndex(ctx context.Context) error {
	if a.opts.ExportIndex != nil {
		return a.startExportIndex(ctx, a.opts.ExportIndex, false)
	}
	x, err := a.openSearchDir(ctx, "search")
	if err != nil {
		return err
	}
	return a.startExportIndex(ctx, x, true)
}

// openSearchDir opens the Badger index in Dir/name (search, or
// access-search), setting a damaged one aside (ExportIndexRebuilt names
// the export index's).
func (a *Archive) openSearchDir(ctx context.Context, name string) (*store.Index, error) {
	dir := filepath.Join(a.opts.Dir, name)
	iopts := store.IndexOptions{Dir: dir, Logger: a.lg.With("index", name)}
	x, err := store.OpenIndex(ctx, iopts)
	if de, ok := errors.AsType[*store.IndexDamagedError](err); ok {
		aside := fmt.Sprintf("%s.damaged-%s", dir, a.now().UTC().Format("20060102T150405Z"))
		if rerr := os.Rename(dir, aside); rerr != nil {
			return nil, fmt.Errorf("archive: open export index: %w; setting it aside: %w", err, rerr)
		}
		if serr := fsutil.SyncDir(a.opts.Dir); serr != nil {
			return nil, fmt.Errorf("archive: open export index: %w; setting it aside: %w", err, serr)
		}
		if name == "search" {
			a.lg.Error("export index damaged: set aside and rebuilt from the archive log; searches are incomplete until it catches up",
				"dir", dir, "setAside", aside, "err", de.Err)
			a.searchAside = aside
		} else {
			a.lg.Error("access log's search index damaged: set aside and rebuilt from the access log",
				"dir", dir, "setAside", aside, "err", de.Err)
		}
		x, err = store.OpenIndex(ctx, iopts)
	}
	if err != nil {
		return nil, fmt.Errorf("archive: open export index: %w", err)
	}
	return x, nil
}

// startExportIndex reads x's watermark and starts the indexer; own: the
// archive closes x (also when this fails).
func (a *Archive) startExportIndex(ctx context.Context, x store.IndexStore, own bool) error {
	fail := func(err error) error {
		if own {
			_ = x.Close()
		}
		return fmt.Errorf("archive: export index: %w", err)
	}
	xi := &exportIndexer{x: x, own: own, wake: make(chan struct{}, 1), done: make(chan struct{}), changed: make(chan struct{})}
	w, err := x.Get(ctx, []byte{kWatermark})
	switch {
	case errors.Is(err, store.ErrNotFound):
		if err := markIndexKeys(ctx, x); err != nil {
			return fail(err)
		}
	case err != nil:
		return fail(err)
	case len(w) != 16:
		return fail(fmt.Errorf("watermark of %d bytes", len(w)))
	default:
		xi.mark, xi.markSet = [2]uint64{binary.BigEndian.Uint64(w), binary.BigEndian.Uint64(w[8:])}, true
	}
	a.xi = xi
	go a.runIndexer(a.bg)
	return nil
}

// ExportIndexRebuilt is where Open set a damaged export index aside to
// rebuild it ("" when it opened).
func (a *Archive) ExportIndexRebuilt() string { return a.searchAside }

// closeExportIndex stops the indexer and closes the index.
func (a *Archive) closeExportIndex() error {
	if a.xi == nil {
		return nil
	}
	<-a.xi.done
	if !a.xi.own {
		return nil
	}
	return a.xi.x.Close()
}

// wakeIndexer asks the indexer to follow the log (after a commit).
func (a *Archive) wakeIndexer() {
	if a.xi == nil {
		return
	}
	select {
	case a.xi.wake <- struct{}{}:
	default:
	}
}

// IndexedUpTo is the number of archive log entries the export index
// covers (every entry below it is indexed).
func (a *Archive) IndexedUpTo() uint64 {
	a.xi.mu.Lock()
	defer a.xi.mu.Unlock()
	return a.xi.mark[0]
}

// WaitIndexed waits until the export index covers the archive log up to
// size (exclusive) or ctx ends.
func (a *Archive) WaitIndexed(ctx context.Context, size uint64) error {
	a.xi.waiters.Add(1)
	defer a.xi.waiters.Add(-1)
	a.adm.ended() // a yielding indexer looks again
	for {
		a.xi.mu.Lock()
		ok, ch := a.xi.mark[0] >= size, a.xi.changed
		a.xi.mu.Unlock()
		if ok {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// runIndexer indexes on every wake and every few seconds (a bundle left
// in flight by one pass is taken by a later one).
func (a *Archive) runIndexer(ctx context.Context) {
	defer close(a.xi.done)
	tick := time.NewTicker(indexTick)
	defer tick.Stop()
	failing := false
	for {
		err := a.indexPass(ctx)
		switch {
		case err != nil && ctx.Err() == nil && !failing:
			failing = true
			a.lg.Error("export index: indexing stopped; retrying", "err", err)
		case err == nil && failing:
			failing = false
			a.lg.Info("export index: indexing again")
		}
		select {
		case <-ctx.Done():
			return
		case <-a.xi.wake:
		case <-tick.C:
		}
	}
}

// indexPass indexes the log from the watermark to its size, stopping at
// a bundle that is not (yet) accepted.
func (a *Archive) indexPass(ctx context.Context) error {
	size := a.log.size()
	if err := a.reloadMark(ctx); err != nil {
		return err
	}
	for {
		a.xi.mu.Lock()
		mark := a.xi.mark
		a.xi.mu.Unlock()
		if mark[0] >= size || ctx.Err() != nil {
			if mark[0] >= size {
				a.xi.caughtUp()
			}
			return ctx.Err()
		}
		if err := a.yieldToAdmission(ctx, mark[0]); err != nil {
			return err
		}
		done, err := a.indexLogEntry(ctx, mark[0], mark[1])
		if errors.Is(err, errMarkMoved) {
			continue // reloaded: go on from the index's watermark
		}
		if err != nil {
			return err
		}
		if !done {
			return nil
		}
	}
}

// indexLogEntry indexes (the next chunk of) log entry li from record
// offset off; done is false when the entry's bundle is not accepted yet.
func (a *Archive) indexLogEntry(ctx context.Context, li, off uint64) (done bool, err error) {
	rec, err := a.log.record(ctx, li)
	if err != nil {
		return false, fmt.Errorf("archive: export index: log %d: %w", li, err)
	}
	lr, err := parseLogRecord(rec)
	if err != nil {
		return false, fmt.Errorf("archive: export index: log %d: %w", li, err)
	}
	if isHold(lr.op) {
		return true, a.indexHold(ctx, li, off, lr.op)
	}
	if lr.entry == nil { // another statement or a key entry: nothing to index
		return true, a.advance(ctx, nil, li+1, 0)
	}
	digest, err := wire.ParseHash(lr.entry.BundleDigest)
	if err != nil {
		return false, err
	}
	acc, ok, err := a.acceptedOf(digest)
	if err != nil {
		return false, err
	}
	if !ok || acc.logIndex != li {
		a.xi.mu.Lock()
		first := !a.xi.stuck
		a.xi.stuck = true
		a.xi.mu.Unlock()
		if first {
			a.lg.Debug("export index: waiting for log entry's bundle to be accepted", "logIndex", li, "bundle", lr.entry.BundleDigest)
		}
		return false, nil
	}
	a.xi.mu.Lock()
	a.xi.stuck = false
	a.xi.mu.Unlock()
	raw, err := a.objects.Get(ctx, digest)
	if errors.Is(err, ErrNotFound) {
		raw, err = a.purgedSkeleton(ctx, digest)
	}
	_, corrupt := errors.AsType[*CorruptError](err)
	if err != nil && !errors.Is(err, ErrNotFound) && !corrupt {
		return false, fmt.Errorf("archive: export index: bundle %s: %w", lr.entry.BundleDigest, err) // retried
	}
	var recs [][]byte
	if err == nil {
		recs, err = bundleRecords(raw, a.opts.Limits)
	}
	if err != nil {
		// Missing (and its skeleton, when purged), altered or
		// unreadable: never wedge the index on it.
		a.lg.Error("export index: the records of a logged bundle cannot be read; not indexed",
			"bundle", lr.entry.BundleDigest, "logIndex", li, "err", err)
		recs = nil
	}
	ref := bundleRef{digest: lr.entry.BundleDigest, object: a.objectKey(digest), acceptedAt: acc.at, logIndex: li}
	if receipt, err := a.storedReceipt(acc); err == nil {
		if _, r, err := archivesig.ParseReceipt(receipt); err == nil {
			ref.retainUntil = r.RetentionUntil
		}
	}
	cases, err := a.heldCases(ctx, lr.entry.Device)
	if err != nil {
		return false, err
	}
	// Each record is parsed once: the bundle's tally (the device summary,
	// the accepted event) is kept as its chunks are indexed, unless
	// indexing resumes within the bundle (then it is taken at the end).
	var tl *recTally
	if off == 0 {
		tl = &recTally{}
	}
	for off < uint64(len(recs)) || off == 0 {
		end := min(off+indexChunk, uint64(len(recs)))
		ops := make([]store.IndexOp, 0, 1+int(end-off)*entryOpsCap)
		ents := make([]*ExportEntry, 0, end-off)
		spans := policySpans{}
		var stats statCounts
		for _, raw := range recs[off:end] {
			r, err := custody.ParseRecord(raw)
			var e *ExportEntry
			if err == nil {
				e, err = entryFrom(r, raw, ref)
			} else {
				r = nil
			}
			tl.add(r, raw, e, err)
			if err != nil { // verified at acceptance: not expected
				a.lg.Error("export index: a record of an accepted bundle cannot be read; not indexed", "bundle", ref.digest, "err", err)
				continue
			}
			if e == nil {
				continue
			}
			if ops, err = entryKeyOps(ops, e); err != nil {
				return false, err
			}
			stats.add(e)
			ops = append(ops, caseEntryOps(e, cases)...)
			ents = append(ents, e)
			spans.add(e)
		}
		pops, err := spans.ops(ctx, a.xi.x.Get)
		if err != nil {
			return false, err
		}
		ops = append(append(ops, stats.ops()...), pops...)
		if len(ents) > 0 {
			bops, err := bundleRefOps(ref)
			if err != nil {
				return false, err
			}
			ops = append(ops, bops...)
		}
		last := end == uint64(len(recs))
		if last {
			if tl == nil {
				tl = tallyOf(recs, ref)
			}
			dops, err := a.deviceSummaryOps(ctx, lr.entry.Device, ref, tl)
			if err != nil {
				return false, err
			}
			ops = append(ops, dops...)
			if err := a.advance(ctx, ops, li+1, 0); err != nil {
				return false, err
			}
		} else if err := a.advance(ctx, ops, li, end); err != nil {
			return false, err
		}
		a.publishIndexed(ents)
		if last {
			a.publishAccepted(ref, lr.entry.Device, tl)
			return true, nil
		}
		off = end
	}
	return true, nil
}

// purgedSkeleton returns the stored skeleton of bundle d, purged before
// the indexer reached it (a rebuilt index, or an indexer behind): it holds
// the bundle's records. ErrNotFound when the log names no purge of d.
func (a *Archive) purgedSkeleton(ctx context.Context, d [32]byte) ([]byte, error) {
	if a.xi.ls == nil || a.xi.ls.purged[d].Skeleton == "" {
		ls, err := a.readLogState(ctx)
		if err != nil {
			return nil, err
		}
		a.xi.ls = ls
	}
	if _, ok := a.xi.ls.purged[d]; !ok {
		return nil, fmt.Errorf("archive: export index: %w", ErrNotFound)
	}
	return a.stored(ctx, a.xi.ls, d)
}

// DeviceSummary is what the export index knows of a device's bundles.
type DeviceSummary struct {
	Bundles        uint64  `json:"bundles"`
	Exports        uint64  `json:"exports"`
	Refused        uint64  `json:"refused"`
	LastBundle     string  `json:"lastBundle,omitempty"`
	LastLogIndex   uint64  `json:"lastLogIndex"`
	LastAcceptedAt string  `json:"lastAcceptedAt,omitempty"`
	LastRecordTime string  `json:"lastRecordTime,omitempty"`
	LagSeconds     float64 `json:"lagSeconds"`
}

func deviceKey(device string) []byte { return comp([]byte{kDevice}, device) }

// deviceSummaryOps updates the device's summary with a bundle (the
// indexer is its only writer).
func (a *Archive) deviceSummaryOps(ctx context.Context, device string, ref bundleRef, tl *recTally) ([]store.IndexOp, error) {
	var s DeviceSummary
	old, err := a.xi.x.Get(ctx, deviceKey(device))
	switch {
	case errors.Is(err, store.ErrNotFound):
	case err != nil:
		return nil, err
	default:
		if err := json.Unmarshal(old, &s); err != nil {
			return nil, fmt.Errorf("archive: export index: device %s: %w", device, err)
		}
	}
	s.Bundles++
	s.Exports += tl.exports
	s.Refused += tl.refused
	newest := tl.newest
	s.LastBundle, s.LastLogIndex, s.LastAcceptedAt = ref.digest, ref.logIndex, ref.acceptedAt
	if !newest.IsZero() {
		s.LastRecordTime = wire.FormatTime(newest)
		if at, err := wire.ParseTime(ref.acceptedAt); err == nil {
			s.LagSeconds = at.Sub(newest).Seconds()
		}
	}
	b, err := json.Marshal(s)
	if err != nil {
		return nil, err
	}
	return []store.IndexOp{{Kind: store.IndexPut, Key: deviceKey(device), Value: b}}, nil
}

// recTally is what the device summary and the accepted event take from
// a bundle's records: the entries indexed (by status), the records by
// type, and the newest record time.
type recTally struct {
	exports, refused     uint64 // entries indexed, accepted and refused
	typeExports, typeRef uint64 // records of type export and export.rejected
	newest               time.Time
}

// add counts one record: r parsed from raw (nil when it does not parse),
// e its entry (nil when it has none) and err why r or e could not be had.
// A nil tally counts nothing.
func (t *recTally) add(r *custody.Record, raw []byte, e *ExportEntry, err error) {
	if t == nil {
		return
	}
	if err == nil && e != nil {
		if e.Status == StatusAccepted {
			t.exports++
		} else {
			t.refused++
		}
	}
	var at time.Time
	ok := false
	if r != nil {
		switch r.Type {
		case custody.TypeExport:
			t.typeExports++
		case custody.TypeExportRejected:
			t.typeRef++
		}
		at, ok = r.Time, true
	} else {
		at, ok = recordTime(raw)
	}
	if ok && at.After(t.newest) {
		t.newest = at
	}
}

// tallyOf is the tally of all of a bundle's records.
func tallyOf(recs [][]byte, ref bundleRef) *recTally {
	t := &recTally{}
	for _, raw := range recs {
		r, err := custody.ParseRecord(raw)
		var e *ExportEntry
		if err == nil {
			e, err = entryFrom(r, raw, ref)
		} else {
			r = nil
		}
		t.add(r, raw, e, err)
	}
	return t
}

func recordTime(raw []byte) (time.Time, bool) {
	var r struct {
		Time string `json:"time"`
	}
	if json.Unmarshal(raw, &r) != nil {
		return time.Time{}, false
	}
	t, err := wire.ParseTime(r.Time)
	return t, err == nil
}
