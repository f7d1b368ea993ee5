package store

import (
	"fmt"
	"sync/atomic"
	"syscall"
	"time"
)

// DefaultMinFreeBytes is the free space Options.MinFreeBytes keeps by
// default.
const DefaultMinFreeBytes = 64 << 20

// spaceRefresh is how long a free-space reading is trusted.
const spaceRefresh = 50 * time.Millisecond

// SpaceError is returned by Append and AppendBatch, before anything is
// queued, when the journal's filesystem has less than Options.MinFreeBytes
// free beyond what the call and the appends in flight would write. Callers
// map it to HTTP 503 (or 507) and retry once space returns; it matches
// errors.Is(err, syscall.ENOSPC).
//
// The check exists because Badger writes its memtables, tables and value
// log through memory-mapped sparse files: on a really full disk it does
// not return ENOSPC, the process dies of SIGBUS (acknowledged records
// survive that like any crash, see TestDiskFull). Keeping a margin turns
// that crash into this error.
type SpaceError struct {
	Dir      string
	Free     int64 // bytes available to the process at the last reading
	Reserved int64 // bytes of appends in flight, counted against Free
	Need     int64 // estimated bytes the refused call would write
	MinFree  int64 // Options.MinFreeBytes
}

func (e *SpaceError) Error() string {
	return fmt.Sprintf("disk nearly full: %d bytes free in %s, %d in flight, call needs about %d, keeping %d free",
		e.Free, e.Dir, e.Reserved, e.Need, e.MinFree)
}

// Unwrap makes errors.Is(err, syscall.ENOSPC) true.
func (e *SpaceError) Unwrap() error { return syscall.ENOSPC }

// spaceGuard refuses appends that would eat into the free-space margin.
// Readings of the filesystem are cached for spaceRefresh, so the check
// costs a statfs at most 20 times a second.
type spaceGuard struct {
	dir      string
	min      int64 // <= 0: off
	free     atomic.Int64
	at       atomic.Int64 // unix nanos of the reading in free; 0: none
	reserved atomic.Int64
}

// needBytes estimates what entries add on disk: payloads and records go
// to the write-ahead log and again to a table (or the value log), so
// twice their size, with 512 bytes per record for the record and hashes.
func needBytes(es []Entry) int64 {
	var n int64
	for _, e := range es {
		n += 512
		for _, p := range e.Payloads {
			n += int64(len(p.Data))
		}
	}
	return 2 * n
}

// reserve counts need against the free space, or returns *SpaceError.
// A nil error must be paired with release(need).
func (g *spaceGuard) reserve(need int64) error {
	if g == nil || g.min <= 0 {
		return nil
	}
	now := time.Now().UnixNano()
	if now-g.at.Load() > int64(spaceRefresh) {
		if free, ok := freeBytes(g.dir); ok {
			g.free.Store(free)
			g.at.Store(now)
		} else {
			return nil // cannot tell: do not refuse
		}
	}
	res := g.reserved.Add(need)
	if free := g.free.Load(); free-res < g.min {
		g.reserved.Add(-need)
		return &SpaceError{Dir: g.dir, Free: free, Reserved: res - need, Need: need, MinFree: g.min}
	}
	return nil
}

func (g *spaceGuard) release(need int64) {
	if g == nil || g.min <= 0 {
		return
	}
	g.reserved.Add(-need)
}
