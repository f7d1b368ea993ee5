package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"syscall"

	"github.com/dgraph-io/badger/v4"
)

// # Ordered index
//
// Index is a durable ordered key-value index beside the journals: the
// archive's export index and access-log index live in one. Its contract
// (IndexStore) is small so that another backend (a SQL table of
// key/value rows) can take its place; indextest.Run is the conformance
// suite every implementation passes.
//
//   - Write applies a batch of operations atomically and durably: when it
//     returns nil every operation is applied and synced, after a crash
//     either all of them are or none; on an error none is.
//   - Keys are compared as byte strings (bytes.Compare). A key is 1 to
//     MaxIndexKeyLen bytes, a value at most MaxIndexValueLen bytes.
//   - IndexAdd adds a signed delta to a counter: a value of 8 bytes,
//     big-endian int64, absent read as 0. Applied in batch order, so
//     the batch sees its own earlier operations.
//   - IndexExpect is a condition: the batch fails whole with an
//     *IndexConflictError unless Key holds Value at that point of the
//     batch (a nil Value: Key is absent; an empty one: Key holds an
//     empty value). Writers of one index in several processes guard
//     their read-modify-writes with it (a compare-and-swap).
//   - Get returns a copy of the value, ErrNotFound when absent.
//   - Scan walks keys in [Lo, Hi) (Hi nil: no upper bound) ascending,
//     or descending with Reverse, calling fn with keys and values valid
//     only during the call, until fn returns false, Limit keys were seen
//     (0: no limit) or the range ends. It reads one consistent snapshot.
//
// Badger runs with SyncWrites and the journal's small-device options,
// with larger memtables so that one Write may carry a few MiB
// (MaxBatchBytes).

// Index limits.
const (
	MaxIndexKeyLen = 1024
	// MaxIndexValueLen holds a custody record of the format's largest
	// size (1 MiB) with a few bytes of the index's own beside it.
	MaxIndexValueLen = 1<<20 + 4096
)

// IndexOpKind is what an IndexOp does.
type IndexOpKind uint8

// Index operations.
const (
	IndexPut    IndexOpKind = iota // set Key to Value
	IndexDelete                    // remove Key (absent: nothing)
	IndexAdd                       // add Delta to the counter at Key
	IndexExpect                    // fail the batch unless Key holds Value (nil: absent)
)

// IndexOp is one operation of a Write.
type IndexOp struct {
	Kind  IndexOpKind
	Key   []byte
	Value []byte // IndexPut; IndexExpect (nil: absent)
	Delta int64  // IndexAdd
}

// IndexRange is what Scan walks.
type IndexRange struct {
	Lo, Hi  []byte // [Lo, Hi); Hi nil: to the end
	Reverse bool   // descending
	Limit   int    // keys at most; 0: no limit
}

// IndexStore is the contract of an ordered index (see Index).
type IndexStore interface {
	Write(ctx context.Context, ops []IndexOp) error
	Get(ctx context.Context, key []byte) ([]byte, error)
	Scan(ctx context.Context, r IndexRange, fn func(key, value []byte) bool) error
	// MaxBatchBytes bounds the total key and value bytes of one Write.
	MaxBatchBytes() int
	Close() error
}

// IndexTooLargeError is a Write whose batch exceeds MaxBatchBytes or a
// key or value over its limit.
type IndexTooLargeError struct {
	What  string
	Size  int
	Limit int
}

func (e *IndexTooLargeError) Error() string {
	return fmt.Sprintf("index: %s of %d bytes exceeds %d", e.What, e.Size, e.Limit)
}

// IndexConflictError is a Write refused because a key did not hold what
// an IndexExpect operation expected (another writer changed it).
type IndexConflictError struct {
	Key []byte
}

func (e *IndexConflictError) Error() string {
	return fmt.Sprintf("index: key %q does not hold the expected value", e.Key)
}

// IndexOptions configure OpenIndex.
type IndexOptions struct {
	Dir    string       // created if missing; required
	Logger *slog.Logger // nil: discard
	// MemTableSize is Badger's memtable size (allocated whole, twice);
	// a Write is at most 15% of it. 0: 32 MiB, for large batches.
	MemTableSize int64
}

// indexMemTable is the index's memtable: a Write is at most 15% of it.
// A variable for tests (smaller: quicker flushes).
var indexMemTable int64 = 32 << 20

// Index is the Badger IndexStore.
type Index struct {
	db  *badger.DB
	max int
}

var _ IndexStore = (*Index)(nil)

// OpenIndex opens (creating) the index in opts.Dir. It fails with
// ErrLocked when another process has it open.
func OpenIndex(ctx context.Context, opts IndexOptions) (*Index, error) {
	if opts.Dir == "" {
		return nil, errors.New("store: open index: IndexOptions.Dir is empty")
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("store: open index: %w", err)
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(opts.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("store: open index: %w", err)
	}
	if err := probeLock(opts.Dir); err != nil {
		return nil, fmt.Errorf("store: open index %s: %w", opts.Dir, err)
	}
	if err := repairEmptyLogs(opts.Dir, opts.Logger); err != nil {
		return nil, fmt.Errorf("store: open index %s: %w", opts.Dir, err)
	}
	o := Options{Dir: opts.Dir, MemTableSize: indexMemTable, Logger: opts.Logger}
	if opts.MemTableSize > 0 {
		o.MemTableSize = opts.MemTableSize
	}
	if err := fitMemTable(&o); err != nil {
		return nil, fmt.Errorf("store: open index %s: %w", opts.Dir, err)
	}
	bl := &badgerLogger{l: opts.Logger.With("component", "badger")}
	db, err := badger.Open(badgerOptions(o, bl))
	if err != nil {
		if damaged(err) {
			err = &IndexDamagedError{Dir: opts.Dir, Err: err}
		}
		return nil, fmt.Errorf("store: open index %s: %w", opts.Dir, err)
	}
	return &Index{db: db, max: int(o.MemTableSize) * 15 / 100 / 2}, nil
}

// IndexDamagedError is an index whose files Badger refuses to open
// without a failing system call behind it: its MANIFEST names a table
// that is gone, or the MANIFEST or a table does not parse. Reopening will
// not help; an index derived from other data can be set aside and rebuilt.
type IndexDamagedError struct {
	Dir string
	Err error
}

func (e *IndexDamagedError) Error() string { return "index damaged: " + e.Err.Error() }
func (e *IndexDamagedError) Unwrap() error { return e.Err }

// damaged reports whether Badger's open error is about the files' content:
// not one of a system call (an errno, a path error: a failing or full
// disk, permissions, another process's lock) nor a cancellation.
func damaged(err error) bool {
	var errno syscall.Errno
	var pe *fs.PathError
	var le *os.LinkError
	switch {
	case errors.As(err, &errno), errors.As(err, &pe), errors.As(err, &le),
		errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return false
	}
	return true
}

// MaxBatchBytes bounds one Write (key and value bytes).
func (x *Index) MaxBatchBytes() int { return x.max }

// Write applies ops in one synced Badger transaction.
func (x *Index) Write(ctx context.Context, ops []IndexOp) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("store: index write: %w", err)
	}
	total := 0
	for _, op := range ops {
		if len(op.Key) == 0 || len(op.Key) > MaxIndexKeyLen {
			return fmt.Errorf("store: index write: %w", &IndexTooLargeError{What: "key", Size: len(op.Key), Limit: MaxIndexKeyLen})
		}
		if len(op.Value) > MaxIndexValueLen {
			return fmt.Errorf("store: index write: %w", &IndexTooLargeError{What: "value", Size: len(op.Value), Limit: MaxIndexValueLen})
		}
		total += len(op.Key) + len(op.Value) + 16
	}
	if total > x.max {
		return fmt.Errorf("store: index write: %w", &IndexTooLargeError{What: "batch", Size: total, Limit: x.max})
	}
	err := x.db.Update(func(txn *badger.Txn) error {
		for _, op := range ops {
			switch op.Kind {
			case IndexPut:
				if err := txn.Set(bytes.Clone(op.Key), bytes.Clone(op.Value)); err != nil {
					return err
				}
			case IndexDelete:
				if err := txn.Delete(bytes.Clone(op.Key)); err != nil {
					return err
				}
			case IndexAdd:
				n, err := txnCounter(txn, op.Key)
				if err != nil {
					return err
				}
				if err := txn.Set(bytes.Clone(op.Key), binary.BigEndian.AppendUint64(nil, uint64(n+op.Delta))); err != nil {
					return err
				}
			case IndexExpect:
				if err := txnExpect(txn, op.Key, op.Value); err != nil {
					return err
				}
			default:
				return fmt.Errorf("unknown operation %d", op.Kind)
			}
		}
		return nil
	})
	if errors.Is(err, badger.ErrConflict) {
		// Another transaction of this process wrote what this one read.
		err = &IndexConflictError{}
	}
	if err != nil {
		return fmt.Errorf("store: index write: %w", err)
	}
	return nil
}

// txnExpect fails with an *IndexConflictError unless key holds want
// (nil: absent).
func txnExpect(txn *badger.Txn, key, want []byte) error {
	it, err := txn.Get(key)
	if errors.Is(err, badger.ErrKeyNotFound) {
		if want == nil {
			return nil
		}
		return &IndexConflictError{Key: bytes.Clone(key)}
	}
	if err != nil {
		return err
	}
	v, err := it.ValueCopy(nil)
	if err != nil {
		return err
	}
	if want == nil || !bytes.Equal(v, want) {
		return &IndexConflictError{Key: bytes.Clone(key)}
	}
	return nil
}

func txnCounter(txn *badger.Txn, key []byte) (int64, error) {
	it, err := txn.Get(key)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	v, err := it.ValueCopy(nil)
	if err != nil {
		return 0, err
	}
	if len(v) != 8 {
		return 0, fmt.Errorf("counter %q holds %d bytes", key, len(v))
	}
	return int64(binary.BigEndian.Uint64(v)), nil
}

// Get returns the value of key (ErrNotFound when absent).
func (x *Index) Get(ctx context.Context, key []byte) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("store: index get: %w", err)
	}
	var out []byte
	err := x.db.View(func(txn *badger.Txn) error {
		it, err := txn.Get(key)
		if err != nil {
			return err
		}
		out, err = it.ValueCopy(nil)
		return err
	})
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, fmt.Errorf("store: index get: %w", ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("store: index get: %w", err)
	}
	return out, nil
}

// Scan walks r in one read snapshot.
func (x *Index) Scan(ctx context.Context, r IndexRange, fn func(key, value []byte) bool) error {
	err := x.db.View(func(txn *badger.Txn) error {
		o := badger.DefaultIteratorOptions
		o.Reverse = r.Reverse
		o.PrefetchValues = false
		it := txn.NewIterator(o)
		defer it.Close()
		if r.Reverse {
			if r.Hi == nil {
				it.Rewind()
			} else {
				// Seek in reverse finds the largest key <= the seek key:
				// Hi itself is excluded below.
				it.Seek(r.Hi)
			}
		} else {
			it.Seek(r.Lo)
		}
		n := 0
		for ; it.Valid(); it.Next() {
			if err := ctx.Err(); err != nil {
				return err
			}
			item := it.Item()
			k := item.Key()
			if r.Reverse {
				if r.Hi != nil && bytes.Compare(k, r.Hi) >= 0 {
					continue
				}
				if bytes.Compare(k, r.Lo) < 0 {
					return nil
				}
			} else if r.Hi != nil && bytes.Compare(k, r.Hi) >= 0 {
				return nil
			}
			v, err := item.ValueCopy(nil)
			if err != nil {
				return err
			}
			n++
			if !fn(k, v) || (r.Limit > 0 && n >= r.Limit) {
				return nil
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("store: index scan: %w", err)
	}
	return nil
}

// Close closes the index.
func (x *Index) Close() error {
	if err := x.db.Close(); err != nil {
		return fmt.Errorf("store: close index: %w", err)
	}
	return nil
}

// PrefixEnd is the smallest key greater than every key with prefix p
// (nil when there is none: p is all 0xff), the Hi of a prefix scan.
func PrefixEnd(p []byte) []byte {
	end := bytes.Clone(p)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] < 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return nil
}
