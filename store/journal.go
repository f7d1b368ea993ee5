package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/badger/v4"
	"golang.org/x/mod/sumdb/tlog"
)

// Journal is the append-only custody journal. All methods are safe for
// concurrent use. Appends go through one sequencer goroutine; reads go
// straight to Badger and see every acknowledged append.
type Journal struct {
	opts Options
	log  *slog.Logger
	db   *badger.DB
	blog *badgerLogger
	c    *crypt // seals values, names content keys (crypt.go)

	state      atomic.Pointer[meta] // committed size and last leaf
	failed     atomic.Pointer[failure]
	failedChan chan struct{} // closed when failed is first set (Failed)
	space      *spaceGuard   // Options.MinFreeBytes

	// Owned by the sequencer goroutine.
	frontier      []node        // compact range of the size being built
	savedFrontier []node        // add's copy of frontier for an undo, reused
	packedFrom    uint64        // hashes are packed from this size on (hashes.go); set by Open
	tip           meta          // size and last leaf after the last group built
	flight        []*inflight   // groups sent to Badger, oldest first (pipeline.go)
	spares        []*badger.Txn // write transactions opened ahead (pipeline.go)
	view          *view         // the sequencer's reads (pipeline.go)
	scratch       []kv          // add's writes of one request, reused
	addedDigests  [][32]byte    // add's payload digests of one request, reused
	addedKeys     []string      // add's idempotency keys of one request, reused
	addedPrefixes [][32]byte    // add's payload prefixes written by one request, reused
	filter        *digestFilter // stored payload keys (digestfilter.go)
	keyFilter     *digestFilter // stored idempotency keys (digestfilter.go)
	filterDone    chan struct{} // closed when the filters' scan has ended

	payloadReads atomic.Int64 // payload lookups that read Badger (tests)
	keyReads     atomic.Int64 // idempotency key lookups that read Badger (tests)

	lastPrefix   []byte   // the last payload prefix seen (payloadsplit.go)
	lastPrefixID [32]byte // its SHA-256
	// storedPrefix is the id of the last prefix a view read from Badger
	// (payloadsplit.go; zero when none): committed, so stored for good.
	storedPrefix [32]byte
	prefixReads  atomic.Int64 // prefix lookups that read Badger (tests)

	lastAnswered int         // requests the last commit answered (linger)
	lingerUntil  time.Time   // when the open group stops waiting (linger)
	lingerTimer  *time.Timer // linger's timer, reused

	purges atomic.Uint64 // payload purges committed (the view reopens after one)

	qmu     sync.Mutex
	queue   []*request
	pending int // entries queued and not yet taken
	closed  bool
	wake    chan struct{}
	quit    chan struct{}
	done    chan struct{}

	omu  sync.Mutex // guards obuf
	obuf []byte     // putOutbox's sealing buffer, kept between puts

	wmu       sync.Mutex   // serialises check-then-write of write-once keys
	active    atomic.Int64 // direct Badger accesses in flight
	closing   atomic.Bool  // set by Close before it waits for active to drain
	closeOnce sync.Once
	closeErr  error

	// Resident-set trimming (see trimResident): the sequencer counts the
	// bytes it commits and wakes the trimmer past opts.ResidentBytes.
	realDir  string
	written  int64 // owned by the sequencer goroutine
	trimWake chan struct{}
	trimDone chan struct{}
	trimmed  atomic.Int64 // passes run (tests)

	cpMu   sync.Mutex // orders updates of lastCP
	lastCP atomic.Pointer[checkpointCache]

	commits    atomic.Int64 // group commits acknowledged (benchmarks)
	committed  atomic.Int64 // key and value bytes of those commits (benchmarks)
	openReads  int          // keys read by Open; see TestOpenReadsMetaOnly
	commitHook func() error // tests: fail a commit before Badger sees it
}

// failure is why the journal refuses writes. abandon: Badger's own write
// (its write-ahead log or value log, or their sync) failed, so what Badger
// holds in memory may be ahead of what is on disk: Close then leaves
// Badger's files alone instead of flushing and syncing them again.
type failure struct {
	err     error
	abandon bool
}

// Open opens (or creates) the journal in opts.Dir. It reads the metadata
// key, the last record and the O(log n) compact-range hashes, checks they
// agree, and never rescans the log: opening is constant time in the number
// of records. A wrong, missing or unexpected encryption key fails with
// ErrEncryptionKey; inconsistent metadata with *CorruptError.
func Open(ctx context.Context, opts Options) (*Journal, error) {
	if err := opts.setDefaults(); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("store: open: %w", err)
	}
	if err := os.MkdirAll(opts.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("store: open: %w", err)
	}
	if err := probeLock(opts.Dir); err != nil {
		return nil, fmt.Errorf("store: open %s: %w", opts.Dir, err)
	}
	if err := repairEmptyLogs(opts.Dir, opts.Logger); err != nil {
		return nil, fmt.Errorf("store: open %s: %w", opts.Dir, err)
	}
	if err := fitMemTable(&opts); err != nil {
		return nil, fmt.Errorf("store: open %s: %w", opts.Dir, err)
	}
	c, err := newCrypt(opts.EncryptionKey)
	if err != nil {
		return nil, fmt.Errorf("store: open: %w", err)
	}
	bl := &badgerLogger{l: opts.Logger.With("component", "badger")}
	db, err := badger.Open(badgerOptions(opts, bl))
	if err != nil {
		if errors.Is(err, badger.ErrEncryptionKeyMismatch) {
			return nil, fmt.Errorf("store: open %s: %w", opts.Dir, ErrEncryptionKey)
		}
		return nil, fmt.Errorf("store: open %s: %w", opts.Dir, err)
	}
	if err := c.checkFormat(db); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("store: open %s: %w", opts.Dir, err)
	}
	j := &Journal{
		c:     c,
		opts:  opts,
		log:   opts.Logger,
		db:    db,
		blog:  bl,
		space: &spaceGuard{dir: opts.Dir, min: opts.MinFreeBytes},
		wake:  make(chan struct{}, 1),
		quit:  make(chan struct{}),
		done:  make(chan struct{}),

		failedChan: make(chan struct{}),
	}
	failFn := func(err error) {
		f := &failure{err: fmt.Errorf("store: background write: %w: %w", err, ErrFailed), abandon: true}
		if j.failed.Load() == nil {
			j.log.Error("journal background write failed; refusing reads and writes until reopened", "err", err)
		}
		j.fail(f)
	}
	bl.fail.Store(&failFn)
	if err := j.load(); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("store: open %s: %w", opts.Dir, err)
	}
	if err := j.openOutbox(); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("store: open %s: outbox: %w", opts.Dir, err)
	}
	j.startFilters()
	go j.run()
	j.startTrimmer()
	return j, nil
}

// load reads the metadata, the hash layout and the compact range and
// cross-checks them; on the first open by this version it writes the
// layout key (hashes.go).
func (j *Journal) load() error {
	var layoutFrom uint64
	writeLayout := false
	err := j.db.View(func(txn *badger.Txn) error {
		j.openReads++
		item, err := txn.Get(metaKey)
		if errors.Is(err, badger.ErrKeyNotFound) {
			// A fresh journal must hold no records.
			j.openReads++
			it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{pfxRecord}})
			defer it.Close()
			if it.Rewind(); it.Valid() {
				return &CorruptError{What: "records present but no metadata"}
			}
			from, ok, err := j.readLayout(txn)
			if err != nil {
				return err
			}
			if ok && from != 0 {
				return &CorruptError{What: fmt.Sprintf("hashes packed from size %d in an empty journal", from)}
			}
			layoutFrom, writeLayout = 0, !ok
			j.state.Store(&meta{})
			j.tip = meta{}
			return nil
		}
		if err != nil {
			return err
		}
		raw, err := j.c.value(item)
		if err != nil {
			return err
		}
		m, err := decodeMeta(raw)
		if err != nil {
			return &CorruptError{What: err.Error()}
		}
		from, ok, err := j.readLayout(txn)
		switch {
		case err != nil:
			return err
		case !ok:
			from, writeLayout = m.Size, true
		case from > m.Size:
			return &CorruptError{What: fmt.Sprintf("hashes packed from size %d, beyond the journal's size %d", from, m.Size)}
		}
		layoutFrom = from
		j.packedFrom = from
		if m.Size > 0 {
			j.openReads++
			rec, err := j.c.get(txn, recordKey(m.Size-1))
			if err != nil {
				return &CorruptError{Seq: m.Size - 1, What: "last record: " + err.Error()}
			}
			if tlog.RecordHash(rec) != m.LastLeaf {
				return &CorruptError{Seq: m.Size - 1, What: "last record does not hash to the recorded last leaf"}
			}
		}
		j.openReads++
		if _, err := txn.Get(recordKey(m.Size)); err == nil {
			return &CorruptError{Seq: m.Size, What: "record beyond the recorded size"}
		}
		nodes := compactNodes(m.Size)
		rd := j.hashReader(txn)
		rd.reads = &j.openReads
		hs, err := rd.ReadHashes(compactIndexes(m.Size))
		if err != nil {
			return err
		}
		for i := range nodes {
			nodes[i].hash = hs[i]
		}
		if m.Size > 0 {
			leafs, err := rd.ReadHashes([]int64{tlog.StoredHashIndex(0, int64(m.Size-1))})
			if err != nil {
				return err
			}
			if leafs[0] != m.LastLeaf {
				return &CorruptError{Seq: m.Size - 1, What: "stored leaf hash differs from the recorded last leaf"}
			}
		}
		j.frontier = nodes
		j.tip = m
		j.state.Store(&m)
		return nil
	})
	if err != nil {
		return err
	}
	j.packedFrom = layoutFrom
	if writeLayout {
		return j.writeLayout(layoutFrom)
	}
	return nil
}

// Size returns the number of acknowledged records.
func (j *Journal) Size() uint64 { return j.state.Load().Size }

// LastLeaf returns the leaf hash of record Size()-1, all zero when empty.
// It is the prev of the next record.
func (j *Journal) LastLeaf() [32]byte { return j.state.Load().LastLeaf }

// enter guards a direct Badger access against Close. It never blocks, so
// a callback (Records, Outbox, Scrub) may call other methods, and once
// Close has begun they return ErrClosed. After a commit failed inside
// Badger reads fail too (ErrFailed): Badger's memory may hold a commit
// that is not on disk (an idempotency key, a receipt, an outbox delete),
// and nothing may be reported from it.
func (j *Journal) enter() error {
	j.active.Add(1)
	if j.closing.Load() {
		j.active.Add(-1)
		return ErrClosed
	}
	if f := j.failed.Load(); f != nil && f.abandon {
		j.active.Add(-1)
		return f.err
	}
	return nil
}

func (j *Journal) leave() { j.active.Add(-1) }

// Record returns a copy of record seq. ErrNotFound when seq >= Size().
func (j *Journal) Record(seq uint64) ([]byte, error) {
	if err := j.enter(); err != nil {
		return nil, fmt.Errorf("store: record %d: %w", seq, err)
	}
	defer j.leave()
	if seq >= j.Size() {
		return nil, fmt.Errorf("store: record %d: %w", seq, ErrNotFound)
	}
	var rec []byte
	err := j.db.View(func(txn *badger.Txn) error {
		var err error
		rec, err = j.c.get(txn, recordKey(seq))
		if errors.Is(err, badger.ErrKeyNotFound) {
			return &CorruptError{Seq: seq, What: "record missing below size"}
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("store: record %d: %w", seq, err)
	}
	return rec, nil
}

// Records calls fn with a copy of each record in [from, to), in order,
// from one consistent snapshot. to must be <= Size() (else *RangeError).
// It stops at the first error from fn or ctx and returns it.
func (j *Journal) Records(ctx context.Context, from, to uint64, fn func(seq uint64, rec []byte) error) error {
	if err := j.enter(); err != nil {
		return fmt.Errorf("store: records: %w", err)
	}
	defer j.leave()
	if cur := j.Size(); from > to || to > cur {
		return fmt.Errorf("store: records: %w", &RangeError{What: "records", A: from, B: to, Size: cur})
	}
	if from == to {
		return nil
	}
	return j.db.View(func(txn *badger.Txn) error {
		return iterRecords(ctx, txn, j.c, from, to, func(seq uint64, rec []byte) error {
			return fn(seq, bytes.Clone(rec))
		})
	})
}

// iterRecords walks records [from,to) of txn; rec is only valid during fn.
func iterRecords(ctx context.Context, txn *badger.Txn, c *crypt, from, to uint64, fn func(seq uint64, rec []byte) error) error {
	io := badger.DefaultIteratorOptions
	io.Prefix = []byte{pfxRecord}
	io.PrefetchSize = 64
	it := txn.NewIterator(io)
	defer it.Close()
	want := from
	for it.Seek(recordKey(from)); want < to; it.Next() {
		if want%256 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		if !it.Valid() {
			return &CorruptError{Seq: want, What: "record missing below size"}
		}
		item := it.Item()
		k := item.Key()
		if len(k) != 9 || !bytes.Equal(k, recordKey(want)) {
			return &CorruptError{Seq: want, What: fmt.Sprintf("record missing below size (next key %x)", k)}
		}
		v, err := c.value(item) // a copy (values inline may sit in a pooled block)
		if err != nil {
			return err
		}
		if err := fn(want, v); err != nil {
			return err
		}
		want++
	}
	return nil
}

// Payload returns a copy of the payload bytes with the given digest,
// journaled whole or split from a shared prefix (Payload.Prefix; the
// same bytes either way). ErrPurged when they were purged, ErrNotFound
// when never stored, a *CorruptError when a split payload cannot be
// joined back to bytes of that digest.
func (j *Journal) Payload(digest [32]byte) ([]byte, error) {
	if err := j.enter(); err != nil {
		return nil, fmt.Errorf("store: payload: %w", err)
	}
	defer j.leave()
	var data []byte
	err := j.db.View(func(txn *badger.Txn) error {
		var err error
		data, err = j.readPayload(txn, digest)
		if !errors.Is(err, badger.ErrKeyNotFound) {
			return err
		}
		if _, err := txn.Get(j.c.digestKey(pfxTombstone, digest)); err == nil {
			return ErrPurged
		}
		return ErrNotFound
	})
	if err != nil {
		return nil, fmt.Errorf("store: payload %x: %w", digest[:8], err)
	}
	return data, nil
}

// Close stops the sequencer (queued appends fail with ErrClosed, a batch
// being committed finishes), then closes Badger. Later calls return the
// first result; every other method then returns ErrClosed.
func (j *Journal) Close() error {
	j.closeOnce.Do(func() {
		j.qmu.Lock()
		j.closed = true
		q := j.queue
		j.queue = nil
		j.pending = 0
		j.qmu.Unlock()
		for _, r := range q {
			if r.state.CompareAndSwap(stQueued, stTaken) {
				r.finish(fmt.Errorf("store: append: %w", ErrClosed))
			}
		}
		close(j.quit)
		if f := j.failed.Load(); f != nil && f.abandon {
			// Never sync again what a failed sync may have dropped (on
			// Linux a failed fsync or msync can mark the unwritten pages
			// clean, so a second sync "succeeds" without writing them):
			// Badger's close would flush the memtable into a new table
			// pointing at those pages and sync the value log again. Nor
			// wait for the sequencer, which may be stuck behind a flush
			// Badger retries forever. Badger's files and directory lock
			// stay with the process, which is expected to exit; the next
			// Open replays the write-ahead log from what reached the disk.
			j.closing.Store(true)
			j.closeErr = fmt.Errorf("store: close: journal abandoned after a failed write: %w", f.err)
			return
		}
		<-j.done
		<-j.trimDone
		<-j.filterDone // the key filters' scan stops at quit
		j.closing.Store(true)
		for j.active.Load() != 0 {
			time.Sleep(time.Millisecond)
		}
		if err := j.db.Close(); err != nil {
			j.closeErr = fmt.Errorf("store: close: %w", err)
		}
	})
	return j.closeErr
}
