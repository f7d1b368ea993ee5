package custody

import (
	"fmt"
	"sync"
	"unsafe"

	"github.com/edgeseal/edgeseal/bundle/wire"
)

// scratch is a decoder and record reused by CheckRecord and
// RecordPayload, which keep nothing of what they parse.
type scratch struct {
	d recDecoder
	r Record
}

var scratchPool = sync.Pool{New: func() any { return new(scratch) }}

// withScratch parses b as ParseRecord does into a pooled record and calls
// fn with it. The record's strings alias b (no copy): fn must not keep
// them, and b must not change meanwhile.
func withScratch(b []byte, fn func(*Record) error) error {
	if len(b) > maxRecordSize {
		return fmt.Errorf("%w: record of %d bytes", wire.ErrTooLarge, len(b))
	}
	s := scratchPool.Get().(*scratch)
	defer func() {
		s.r = Record{}
		s.d.s = ""
		scratchPool.Put(s)
	}()
	if err := s.d.parse(b, unsafe.String(unsafe.SliceData(b), len(b)), &s.r); err != nil {
		return err
	}
	if fn != nil {
		return fn(&s.r)
	}
	return nil
}

// CheckRecord reports what ParseRecord would refuse in b, without
// allocating the record (the check at the end of Marshal).
func CheckRecord(b []byte) error { return withScratch(b, nil) }

// RecordPayload parses b as ParseRecord does and returns the digest of
// the payload it names; ok is false for records that name none (every
// type but export).
func RecordPayload(b []byte) (digest [32]byte, ok bool, err error) {
	err = withScratch(b, func(r *Record) error {
		digest, ok = r.payload, r.hasExport
		return nil
	})
	return digest, ok && err == nil, err
}

// RecordPayloadFile parses b as ParseRecord does and returns the digest
// of the payload file an export record names: its ciphertext's when the
// payload is encrypted (encrypted true), else its plaintext's. ok is false
// for records that name none.
func RecordPayloadFile(b []byte) (digest [32]byte, encrypted, ok bool, err error) {
	err = withScratch(b, func(r *Record) error {
		digest, encrypted, ok = r.payload, r.encrypted, r.hasExport
		if r.encrypted {
			digest = r.cipher
		}
		return nil
	})
	return digest, encrypted, ok && err == nil, err
}
