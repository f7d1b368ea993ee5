package store

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/dgraph-io/badger/v4"
)

// Snapshot is a read-only view of the journal as of one moment: its
// lookups share one Badger read transaction instead of opening one each
// (a caller that looks up a key per line of a batch). It sees the records
// acknowledged when it was taken, never later ones. Close it soon: the
// journal's Close waits for it, and Badger keeps the versions it may
// read until then. A Snapshot is not safe for concurrent use.
type Snapshot struct {
	j      *Journal
	txn    *badger.Txn
	size   uint64
	closed bool
}

// Snapshot takes a read view of the acknowledged journal.
func (j *Journal) Snapshot() (*Snapshot, error) {
	if err := j.enter(); err != nil {
		return nil, fmt.Errorf("store: snapshot: %w", err)
	}
	size := j.Size() // before the transaction: it sees at least these
	return &Snapshot{j: j, txn: j.db.NewTransaction(false), size: size}, nil
}

// Size is the journal's size the snapshot was taken at.
func (s *Snapshot) Size() uint64 { return s.size }

// Lookup is Journal.Lookup in the snapshot: ErrNotFound for a key no
// record acknowledged when the snapshot was taken carries.
func (s *Snapshot) Lookup(key []byte) (uint64, error) {
	if s.closed {
		return 0, fmt.Errorf("store: lookup: %w", ErrClosed)
	}
	if len(key) > MaxKeyLen {
		return 0, fmt.Errorf("store: lookup: %w", &KeyTooLongError{Len: len(key), Limit: MaxKeyLen})
	}
	if len(key) == 0 {
		return 0, fmt.Errorf("store: lookup: empty key: %w", ErrNotFound)
	}
	v, err := s.j.c.get(s.txn, s.j.c.idemKey(key))
	switch {
	case errors.Is(err, badger.ErrKeyNotFound):
		return 0, fmt.Errorf("store: lookup %q: %w", key, ErrNotFound)
	case err != nil:
		return 0, fmt.Errorf("store: lookup %q: %w", key, err)
	case len(v) != 8:
		return 0, fmt.Errorf("store: lookup %q: %w", key, &CorruptError{What: fmt.Sprintf("idempotency key %q: value is %d bytes, want 8", key, len(v))})
	}
	seq := binary.BigEndian.Uint64(v)
	if seq >= s.size {
		// Committed but not yet acknowledged when the snapshot was taken.
		return 0, fmt.Errorf("store: lookup %q: %w", key, ErrNotFound)
	}
	return seq, nil
}

// Close releases the snapshot; later calls do nothing.
func (s *Snapshot) Close() {
	if s.closed {
		return
	}
	s.closed = true
	s.txn.Discard()
	s.j.leave()
}
