package agent

import (
	"sync"

	"github.com/edgeseal/edgeseal/store"
)

// sealCache keeps the records journaled since the last seal, with the
// payloads they carry, so a seal takes them from memory instead of reading
// them back from the journal. It is bounded: past max bytes it keeps
// nothing more and the seal reads the rest from the journal (records from
// before a restart, or when sealing fell behind). It only ever speeds a
// seal up: what it returns is what Append returned as journaled. A nil
// *sealCache keeps nothing (a core that never seals: NewReceiptJournal).
type sealCache struct {
	mu      sync.Mutex
	start   uint64 // records below were journaled before this cache: never kept
	floor   uint64 // records below are sealed: not kept
	refused uint64 // records below may have been refused for room
	recs    map[uint64]cachedRecord
	bytes   int64
	max     int64
}

type cachedRecord struct {
	rec      []byte
	payloads []store.Payload
	file     payloadFile
}

// payloadFile is the payload file a record names, as the core knew it
// when it built the record: none, or its digest and whether it is
// ciphertext. A seal takes it instead of parsing the record again; when
// not known it parses the record.
type payloadFile struct {
	known     bool
	has       bool
	encrypted bool
	digest    [32]byte
}

// noPayloadFile is the payloadFile of a record that names none.
var noPayloadFile = payloadFile{known: true}

// newSealCache keeps up to max bytes of records from start on (the
// journal's size when the core opens).
func newSealCache(max int64, start uint64) *sealCache {
	return &sealCache{recs: map[uint64]cachedRecord{}, max: max, start: start, floor: start, refused: start}
}

// add keeps a journaled record and its payloads, if there is room.
func (s *sealCache) add(a store.Appended, payloads []store.Payload) {
	s.addFile(a, payloads, payloadFile{})
}

// addFile is add with the payload file the record names, when known.
func (s *sealCache) addFile(a store.Appended, payloads []store.Payload, file payloadFile) {
	if s == nil || a.Record == nil {
		return
	}
	n := int64(len(a.Record))
	for _, p := range payloads {
		n += int64(len(p.Data))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if a.Seq < s.floor {
		return
	}
	if s.bytes+n > s.max {
		s.refused = max(s.refused, a.Seq+1)
		return
	}
	s.recs[a.Seq] = cachedRecord{rec: a.Record, payloads: payloads, file: file}
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

// has reports whether record seq is kept.
func (s *sealCache) has(seq uint64) bool {
	if s == nil {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.recs[seq]
	return ok
}

// coming reports whether record seq, not kept, is still to be added: it
// was journaled while this cache was running and no record from seq on was
// refused, so its Append has not returned yet. A seal stops before such a
// record rather than read it back; the next seal takes it from memory.
func (s *sealCache) coming(seq uint64) bool {
	if s == nil {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.recs[seq]
	return !ok && seq >= s.refused
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
