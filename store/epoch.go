package store

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/dgraph-io/badger/v4"
)

// pfxEpoch keys the sealing epoch (value: be64(epoch)); absent means 1.
const pfxEpoch = 'e'

var epochKey = []byte{pfxEpoch}

// epochDeleteBatch bounds the checkpoints one StartEpoch commit deletes.
const epochDeleteBatch = 1000

// Epoch returns the journal's sealing epoch: 1 until StartEpoch first
// runs. The agent names its delivery records by it, so the bundles of a
// new epoch (whose checkpoints restart from size 0) are not taken for
// those of the epoch before.
func (j *Journal) Epoch() (uint64, error) {
	if err := j.enter(); err != nil {
		return 0, fmt.Errorf("store: epoch: %w", err)
	}
	defer j.leave()
	var e uint64 = 1
	err := j.db.View(func(txn *badger.Txn) error {
		v, err := j.c.get(txn, epochKey)
		switch {
		case errors.Is(err, badger.ErrKeyNotFound):
			return nil
		case err != nil:
			return err
		case len(v) != 8 || binary.BigEndian.Uint64(v) < 2:
			return &CorruptError{What: fmt.Sprintf("epoch value %x", v)}
		}
		e = binary.BigEndian.Uint64(v)
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("store: epoch: %w", err)
	}
	return e, nil
}

// StartEpoch starts a new sealing epoch, for a device whose signing key
// was lost (a cleared or replaced TPM): it numbers the epoch one higher
// and deletes every stored checkpoint, so the next seal covers the
// journal again from size 0 with no previous checkpoint. Records,
// payloads and idempotency keys are not touched. It returns the new
// epoch; when no checkpoint is stored nothing was sealed in the epoch
// and it changes nothing, returning the current one. The number is
// written in the first commit and the checkpoints deleted in commits of
// at most 1000: after a crash in between, running it again finishes the
// deletion (and numbers one more epoch, in which nothing was sealed).
// The caller ensures nothing seals meanwhile.
func (j *Journal) StartEpoch(ctx context.Context) (uint64, error) {
	cur, err := j.Epoch()
	if err != nil {
		return 0, err
	}
	if err := j.enter(); err != nil {
		return 0, fmt.Errorf("store: start epoch: %w", err)
	}
	defer j.leave()
	j.cpMu.Lock()
	defer j.cpMu.Unlock()
	next := cur
	for first := true; ; first = false {
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		keys, err := j.checkpointKeys(epochDeleteBatch)
		if err != nil {
			return 0, fmt.Errorf("store: start epoch: %w", err)
		}
		if len(keys) == 0 {
			break
		}
		j.wmu.Lock()
		err = j.update(func(txn *badger.Txn) error {
			if first {
				next = cur + 1
				if err := j.c.set(txn, epochKey, binary.BigEndian.AppendUint64(nil, next)); err != nil {
					return err
				}
			}
			for _, k := range keys {
				if err := txn.Delete(k); err != nil {
					return err
				}
			}
			return nil
		})
		j.wmu.Unlock()
		j.lastCP.Store(nil)
		if err != nil {
			return 0, fmt.Errorf("store: start epoch: %w", err)
		}
	}
	return next, nil
}

// checkpointKeys returns up to n stored checkpoint keys.
func (j *Journal) checkpointKeys(n int) ([][]byte, error) {
	var keys [][]byte
	err := j.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{pfxCheckpoint}})
		defer it.Close()
		for it.Rewind(); it.Valid() && len(keys) < n; it.Next() {
			keys = append(keys, it.Item().KeyCopy(nil))
		}
		return nil
	})
	return keys, err
}
