package agent

import (
	"sync"

	"github.com/edgeseal/edgeseal/store"
)

// sealCache keeps the records journaled since the last seal, with the
// payloads they carry, so a seal takes them from memory instead of reading
// them back from the journal. It is bounded: past max bytes it keeps
// nothing more and the seal reads the rest from the journal (after a
// restart, or when sealing fell behind). It only ever speeds a seal up:
// what it returns is what Append returned as journaled. A nil *sealCache
// keeps nothing (a core that never seals: NewReceiptJournal).
type sealCache struct {
	mu    sync.Mutex
	floor uint64 // records below are sealed: not kept
	recs  map[uint64]cachedRecord
	bytes int64
	max   int64
}

type cachedRecord struct {
	rec      []byte
	payloads []store.Payload
}

func newSealCache(max int64) *sealCache {
	return &sealCache{recs: map[uint64]cachedRecord{}, max: max}
}

// add keeps a journaled record and its payloads, if there is room.
func (s *sealCache) add(a store.Appended, payloads []store.Payload) {
	if s == nil || a.Record == nil {
		return
	}
	n := int64(len(a.Record))
	for _, p := range payloads {
		n += int64(len(p.Data))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if a.Seq < s.floor || s.bytes+n > s.max {
		return
	}
	s.recs[a.Seq] = cachedRecord{rec: a.Record, payloads: payloads}
	s.bytes += n
}

// get returns record seq and its payloads, if kept.
func (s *sealCache) get(seq uint64) (cachedRecord, bool) {
	if s == nil {
		return cachedRecord{}, false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.recs[seq]
	return r, ok
}

// sealed drops the records below size (a seal covered them).
func (s *sealCache) sealed(size uint64) {
	if s == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if size <= s.floor {
		return
	}
	for seq, r := range s.recs {
		if seq < size {
			s.bytes -= int64(len(r.rec))
			for _, p := range r.payloads {
				s.bytes -= int64(len(p.Data))
			}
			delete(s.recs, seq)
		}
	}
	s.floor = size
}
