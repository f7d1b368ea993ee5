package api

import (
	"fmt"
	"net/http"
	"sync"
)

// DefaultMaxInflight is the default of Options.MaxInflight.
const DefaultMaxInflight = 64 << 20

// InflightError refuses a single export whose body would take the bytes
// held by exports in flight over Options.MaxInflight; the API answers 503
// with Retry-After (code busy) and journals nothing.
type InflightError struct {
	Want, InUse, Limit int64 // bytes
}

func (e *InflightError) Error() string {
	return fmt.Sprintf("api: busy: %d bytes of exports in flight, %d more would pass api.max_inflight (%d)", e.InUse, e.Want, e.Limit)
}

// inflight is a byte-weighted semaphore that never waits: a request takes
// its share or is refused at once (a client retries; a queue of bodies
// waiting to be read would hold the connections and their buffers).
type inflight struct {
	mu    sync.Mutex
	used  int64
	limit int64
}

func (f *inflight) acquire(n int64) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.used+n > f.limit {
		return &InflightError{Want: n, InUse: f.used, Limit: f.limit}
	}
	f.used += n
	return nil
}

func (f *inflight) release(n int64) {
	f.mu.Lock()
	f.used -= n
	f.mu.Unlock()
}

// inflightShare is what a single export's body may take: its
// Content-Length, or the whole api.max_body when the length is not known
// (chunked) or over the limit (then refused with 413 while reading).
func (s *Server) inflightShare(r *http.Request) int64 {
	if r.ContentLength >= 0 && r.ContentLength <= s.opts.MaxBody {
		return r.ContentLength
	}
	return s.opts.MaxBody
}
