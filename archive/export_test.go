package archive

import (
	"context"
	"time"

	"github.com/edgeseal/edgeseal/store"
)

// SetIndexHook sets the hook run before each export index batch (the
// watermark it would write: log index, records done); an error stops
// the indexer there, as a crash would. nil clears it.
func SetIndexHook(h func(logIndex, off uint64) error) {
	if h == nil {
		indexHook.Store(nil)
		return
	}
	indexHook.Store(&h)
}

// DropIndexKeysMarker removes the marker saying the export index's
// per-device policy keys cover every entry, as in an index written by a
// build without them.
func DropIndexKeysMarker(a *Archive) error {
	return a.xi.x.Write(context.Background(), []store.IndexOp{{Kind: store.IndexDelete, Key: []byte{kVersion}}})
}

// RestoreIndexKeysMarker puts back what DropIndexKeysMarker removed.
func RestoreIndexKeysMarker(a *Archive) error { return markIndexKeys(context.Background(), a.xi.x) }

// ContentWindows is the number of payload cipher version 2 windows whose
// decapsulated context the archive keeps.
func ContentWindows(a *Archive) int {
	ck, err := a.contentKeyState()
	if err != nil {
		return -1
	}
	return ck.opener.Len()
}

// SetIndexTick sets the interval of the export indexer's passes when
// nothing wakes it, for archives opened after; it returns the one before.
func SetIndexTick(d time.Duration) time.Duration {
	old := indexTick
	indexTick = d
	return old
}

// IndexAsStale indexes log entry li as the indexer of another archive
// process would whose view of the shared index's watermark is from (it
// has not seen the batches since): it returns what the batch returned,
// ErrIndexMarkMoved when refused for the moved watermark.
func IndexAsStale(a *Archive, li uint64, from [2]uint64) error {
	a.xi.mu.Lock()
	a.xi.mark = from
	a.xi.mu.Unlock()
	_, err := a.indexLogEntry(context.Background(), li, from[1])
	return err
}

// ErrIndexMarkMoved is errMarkMoved.
var ErrIndexMarkMoved = errMarkMoved

// SetCommitHook sets the hook run for each bundle after its log entry
// and before its chain advance (an error fails it there). Set it before
// any bundle is admitted.
func SetCommitHook(a *Archive, h func(digest [32]byte) error) { a.commitHook = h }

// SetAdvancedHook sets the hook run for each bundle a replica advanced
// without its receipt (the first phase); an error fails it there,
// unreceipted and unanswered. Set it before any bundle is admitted.
func SetAdvancedHook(a *Archive, h func(digest [32]byte) error) { a.advancedHook = h }

// LogEntries are the archive log's entries.
func LogEntries(ctx context.Context, a *Archive) ([][]byte, error) {
	var out [][]byte
	err := a.log.all(ctx, func(_ uint64, rec []byte) error {
		out = append(out, append([]byte(nil), rec...))
		return nil
	})
	return out, err
}

// HoldAdmission counts an admission under way, as an Admit call does,
// until release is called: the export indexer yields to it.
func HoldAdmission(a *Archive) (release func()) {
	a.adm.begin()
	return a.adm.endCall
}

// SetIndexYield sets the bounds of the export indexer's yielding to
// admission (log entries behind, time); restore puts back the ones
// before.
func SetIndexYield(lag uint64, d time.Duration) (restore func()) {
	oldLag, oldD := indexMaxLag.Swap(int64(lag)), indexMaxDefer.Swap(int64(d))
	return func() { indexMaxLag.Store(oldLag); indexMaxDefer.Store(oldD) }
}
