package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// PurgePayload deletes the payload bytes with the given digest and leaves
// a tombstone, so Payload then returns ErrPurged. Records and hashes are
// never touched. Purging again is a no-op; a digest never stored returns
// ErrNotFound. Payloads live in Badger's value log (see valueThreshold):
// the key is gone at once, the encrypted bytes stay in their value-log
// file until Badger's value-log garbage collection rewrites it.
func (j *Journal) PurgePayload(ctx context.Context, digest [32]byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := j.enter(); err != nil {
		return fmt.Errorf("store: purge: %w", err)
	}
	defer j.leave()
	j.wmu.Lock()
	defer j.wmu.Unlock()
	err := j.update(func(txn *badger.Txn) error {
		keys, perr := j.payloadKeys(txn, digest)
		_, terr := txn.Get(j.c.digestKey(pfxTombstone, digest))
		switch {
		case perr != nil:
			return perr
		case len(keys) > 0:
		case terr == nil:
			return nil // already purged
		default:
			return ErrNotFound
		}
		// Both shapes go when both are stored. A split payload's prefix
		// stays: other payloads may share it (a payload cipher window's
		// encapsulated key holds no content).
		for _, k := range keys {
			if err := txn.Delete(k); err != nil {
				return err
			}
		}
		ts := binary.BigEndian.AppendUint64(nil, uint64(time.Now().UnixNano()))
		return j.c.set(txn, j.c.digestKey(pfxTombstone, digest), ts)
	})
	if err != nil {
		return fmt.Errorf("store: purge %x: %w", digest[:8], err)
	}
	j.purges.Add(1)
	return nil
}

// putOnce writes key=data unless present: same bytes is a no-op, other
// bytes a *ConflictError.
func (j *Journal) putOnce(key []byte, data []byte, kind, name string) error {
	j.wmu.Lock()
	defer j.wmu.Unlock()
	return j.update(func(txn *badger.Txn) error {
		old, err := j.c.get(txn, key)
		switch {
		case err == nil:
			if bytes.Equal(old, data) {
				return nil
			}
			return &ConflictError{Kind: kind, Key: name}
		case !errors.Is(err, badger.ErrKeyNotFound):
			return err
		}
		return j.c.set(txn, key, data)
	})
}

// PutCheckpoint stores the checkpoint for tree size (<= Size(), else
// *RangeError), synced. Storing the same bytes again is a no-op; other
// bytes for the same size are a *ConflictError (a fork).
func (j *Journal) PutCheckpoint(ctx context.Context, size uint64, data []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := j.enter(); err != nil {
		return fmt.Errorf("store: put checkpoint: %w", err)
	}
	defer j.leave()
	if cur := j.Size(); size > cur {
		return fmt.Errorf("store: put checkpoint: %w", &RangeError{What: "checkpoint", A: size, B: size, Size: cur})
	}
	if err := j.putOnce(checkpointKey(size), data, "checkpoint", strconv.FormatUint(size, 10)); err != nil {
		return fmt.Errorf("store: put checkpoint %d: %w", size, err)
	}
	j.cpMu.Lock()
	if c := j.lastCP.Load(); c == nil || size >= c.size {
		j.lastCP.Store(&checkpointCache{size: size, data: bytes.Clone(data)})
	}
	j.cpMu.Unlock()
	return nil
}

// checkpointCache is the last checkpoint, kept by LastCheckpoint and
// PutCheckpoint so the agent's per-export check costs no Badger read.
type checkpointCache struct {
	size uint64
	data []byte
}

// LastCheckpoint returns the stored checkpoint of the largest size.
// ErrNotFound when none was stored.
func (j *Journal) LastCheckpoint() (size uint64, data []byte, err error) {
	if err := j.enter(); err != nil {
		return 0, nil, fmt.Errorf("store: last checkpoint: %w", err)
	}
	defer j.leave()
	if c := j.lastCP.Load(); c != nil {
		return c.size, bytes.Clone(c.data), nil
	}
	j.cpMu.Lock() // a PutCheckpoint meanwhile must not be overwritten by older bytes
	defer j.cpMu.Unlock()
	if c := j.lastCP.Load(); c != nil {
		return c.size, bytes.Clone(c.data), nil
	}
	size, data, err = j.seekCheckpoint(math.MaxUint64, true)
	if err != nil {
		return 0, nil, fmt.Errorf("store: last checkpoint: %w", err)
	}
	j.lastCP.Store(&checkpointCache{size: size, data: bytes.Clone(data)})
	return size, data, nil
}

// NextCheckpoint returns the smallest stored checkpoint whose size is
// greater than after (the checkpoint that first covered record seq is
// NextCheckpoint(seq)); ErrNotFound when there is none.
func (j *Journal) NextCheckpoint(after uint64) (size uint64, data []byte, err error) {
	if err := j.enter(); err != nil {
		return 0, nil, fmt.Errorf("store: next checkpoint: %w", err)
	}
	defer j.leave()
	if after == math.MaxUint64 {
		return 0, nil, fmt.Errorf("store: next checkpoint: %w", ErrNotFound)
	}
	size, data, err = j.seekCheckpoint(after+1, false)
	if err != nil {
		return 0, nil, fmt.Errorf("store: next checkpoint: %w", err)
	}
	return size, data, nil
}

// seekCheckpoint reads the first checkpoint from size from on, or from
// it down when reverse; ErrNotFound when there is none.
func (j *Journal) seekCheckpoint(from uint64, reverse bool) (size uint64, data []byte, err error) {
	err = j.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Reverse: reverse, Prefix: []byte{pfxCheckpoint}})
		defer it.Close()
		it.Seek(checkpointKey(from))
		if !it.Valid() {
			return ErrNotFound
		}
		k := it.Item().Key()
		if len(k) != 9 {
			return &CorruptError{What: fmt.Sprintf("checkpoint key %x", k)}
		}
		size = binary.BigEndian.Uint64(k[1:])
		data, err = j.c.value(it.Item())
		return err
	})
	return size, data, err
}

// PayloadState says whether the payload bytes with the given digest are
// stored (present) or were purged (a tombstone, bytes absent), without
// reading them; both false when never stored.
func (j *Journal) PayloadState(digest [32]byte) (present, purged bool, err error) {
	if err := j.enter(); err != nil {
		return false, false, fmt.Errorf("store: payload state: %w", err)
	}
	defer j.leave()
	err = j.db.View(func(txn *badger.Txn) error {
		keys, perr := j.payloadKeys(txn, digest)
		if perr != nil {
			return perr
		}
		if len(keys) > 0 {
			present = true
			return nil
		}
		_, terr := txn.Get(j.c.digestKey(pfxTombstone, digest))
		if terr == nil {
			purged = true
			return nil
		}
		if !errors.Is(terr, badger.ErrKeyNotFound) {
			return terr
		}
		return nil
	})
	if err != nil {
		return false, false, fmt.Errorf("store: payload state %x: %w", digest[:8], err)
	}
	return present, purged, nil
}
