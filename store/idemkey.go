package store

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/dgraph-io/badger/v4"
)

// Lookup returns the sequence number of the record journaled under the
// idempotency key (Entry.Key). ErrNotFound when no acknowledged record
// carries the key (an empty key never does); *KeyTooLongError when the key
// is longer than MaxKeyLen. A seq returned is below Size(), so Record(seq)
// finds it. Keys are never deleted, so the answer never changes once given.
func (j *Journal) Lookup(key []byte) (seq uint64, err error) {
	if len(key) > MaxKeyLen {
		return 0, fmt.Errorf("store: lookup: %w", &KeyTooLongError{Len: len(key), Limit: MaxKeyLen})
	}
	if err := j.enter(); err != nil {
		return 0, fmt.Errorf("store: lookup: %w", err)
	}
	defer j.leave()
	if len(key) == 0 {
		return 0, fmt.Errorf("store: lookup: empty key: %w", ErrNotFound)
	}
	seq, err = j.committedKey(key)
	if err == nil && seq >= j.Size() {
		// Committed but not yet acknowledged (the sequencer publishes the
		// new size right after the commit): not there yet, like Record.
		err = ErrNotFound
	}
	if err != nil {
		return 0, fmt.Errorf("store: lookup %q: %w", key, err)
	}
	return seq, nil
}

// committedKey reads the seq stored under an idempotency key; ErrNotFound
// when absent, *CorruptError when the value is malformed.
func (j *Journal) committedKey(key []byte) (uint64, error) {
	var seq uint64
	err := j.db.View(func(txn *badger.Txn) error {
		v, err := j.c.get(txn, j.c.idemKey(key))
		if errors.Is(err, badger.ErrKeyNotFound) {
			return ErrNotFound
		}
		if err != nil {
			return err
		}
		if len(v) != 8 {
			return &CorruptError{What: fmt.Sprintf("idempotency key %q: value is %d bytes, want 8", key, len(v))}
		}
		seq = binary.BigEndian.Uint64(v)
		return nil
	})
	return seq, err
}
