package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/pb"
	"github.com/dgraph-io/ristretto/v2/z"
)

// IndexLoader fills a new, empty index in one pass with Badger's
// StreamWriter, its bulk-load mode: keys given in ascending order are
// written as sorted tables straight into the last level of the tree, with
// no write-ahead log, memtable or compaction. It is for building large
// indexes (benchmarks, a rebuild into a fresh directory), not for an
// index in use: nothing is durable until Finish returns, and a load that
// does not finish leaves a directory to delete. Open the result with
// OpenIndex.
type IndexLoader struct {
	db   *badger.DB
	sw   *badger.StreamWriter
	buf  *z.Buffer
	last []byte
	n    int64
	size int
	kv   pb.KV
}

// loadFlushBytes is how much one StreamWriter.Write carries.
const loadFlushBytes = 32 << 20

// LoadIndex starts loading an index into opts.Dir, which must not exist
// or be empty.
func LoadIndex(ctx context.Context, opts IndexOptions) (*IndexLoader, error) {
	if opts.Dir == "" {
		return nil, errors.New("store: load index: IndexOptions.Dir is empty")
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("store: load index: %w", err)
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if ents, err := os.ReadDir(opts.Dir); err == nil && len(ents) > 0 {
		return nil, fmt.Errorf("store: load index: %s is not empty", opts.Dir)
	}
	if err := os.MkdirAll(opts.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("store: load index: %w", err)
	}
	o := Options{Dir: opts.Dir, MemTableSize: indexMemTable, Logger: opts.Logger}
	bl := &badgerLogger{l: opts.Logger.With("component", "badger")}
	db, err := badger.Open(badgerOptions(o, bl).WithSyncWrites(false))
	if err != nil {
		return nil, fmt.Errorf("store: load index %s: %w", opts.Dir, err)
	}
	sw := db.NewStreamWriter()
	if err := sw.Prepare(); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("store: load index %s: %w", opts.Dir, err)
	}
	return &IndexLoader{db: db, sw: sw, buf: z.NewBuffer(loadFlushBytes+(1<<20), "store.IndexLoader")}, nil
}

// Put adds key with value; keys must be strictly ascending (bytes.Compare)
// and within the index's limits.
func (l *IndexLoader) Put(key, value []byte) error {
	if len(key) == 0 || len(key) > MaxIndexKeyLen {
		return fmt.Errorf("store: load index: %w", &IndexTooLargeError{What: "key", Size: len(key), Limit: MaxIndexKeyLen})
	}
	if len(value) > MaxIndexValueLen {
		return fmt.Errorf("store: load index: %w", &IndexTooLargeError{What: "value", Size: len(value), Limit: MaxIndexValueLen})
	}
	if l.n > 0 && bytes.Compare(key, l.last) <= 0 {
		return fmt.Errorf("store: load index: key %x does not follow %x", key, l.last)
	}
	l.last = append(l.last[:0], key...)
	l.kv = pb.KV{Key: key, Value: value, Version: 1}
	badger.KVToBuffer(&l.kv, l.buf)
	l.n++
	l.size += len(key) + len(value)
	if l.size >= loadFlushBytes {
		return l.flush()
	}
	return nil
}

func (l *IndexLoader) flush() error {
	if l.size == 0 {
		return nil
	}
	if err := l.sw.Write(l.buf); err != nil {
		return fmt.Errorf("store: load index: %w", err)
	}
	l.buf.Reset()
	l.size = 0
	return nil
}

// Keys is the number of keys put so far.
func (l *IndexLoader) Keys() int64 { return l.n }

// Finish writes what is left, syncs and closes the index.
func (l *IndexLoader) Finish() error {
	err := l.flush()
	if err == nil {
		err = l.sw.Flush()
	}
	if err != nil {
		l.sw.Cancel()
	}
	if cerr := l.db.Close(); err == nil {
		err = cerr
	}
	_ = l.buf.Release()
	if err != nil {
		return fmt.Errorf("store: load index: %w", err)
	}
	return nil
}

// Abort drops the load; the directory is left to delete.
func (l *IndexLoader) Abort() {
	l.sw.Cancel()
	_ = l.db.Close()
	_ = l.buf.Release()
}
