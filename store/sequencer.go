package store

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/dgraph-io/badger/v4"
	"golang.org/x/mod/sumdb/tlog"
)

// Entry is one record to append.
type Entry struct {
	// Build returns the record bytes for sequence number seq whose
	// previous leaf hash is prev (all zero for seq 0). It runs on the
	// sequencer goroutine, in order, so it must be quick and must not call
	// the Journal. An error (or panic) fails only this entry, which then
	// gets no sequence number. The bytes it returns are the journal's
	// until the call is answered (Badger may write them as they are), then
	// the caller's (Appended.Record): Build returns a new slice each time.
	// Payload bytes likewise stay unchanged until the call returns.
	Build func(seq uint64, prev [32]byte) ([]byte, error)
	// Payloads are stored by digest in the same commit (once: a digest
	// already stored is not rewritten; a purged one is stored again).
	Payloads []Payload
	// Key, when non-empty, is an idempotency key of at most MaxKeyLen
	// bytes (longer: *KeyTooLongError, nothing queued). If a record was
	// already journaled under it, committed earlier or by an earlier entry
	// of the same group commit, the entry is not appended (Build is not
	// called, no sequence number is used) and its result is a
	// *DuplicateError carrying the original seq. Otherwise the key -> seq
	// mapping is written in the same Badger transaction as the record, so
	// after a crash both exist or neither does. A nil or empty Key means
	// no key. Keys are never deleted.
	Key []byte
}

// MaxKeyLen is the longest Entry.Key accepted, in bytes.
const MaxKeyLen = 256

// Payload is payload bytes addressed by their SHA-256 digest.
type Payload struct {
	Digest [32]byte
	Data   []byte
	// Prefix, when positive, is the length of a leading part of Data
	// that many payloads share (a payload cipher window's encapsulated
	// key): the journal stores that part once and each payload as the
	// rest and a reference to it (payloadsplit.go). Journal.Payload
	// returns the whole Data either way. At most len(Data).
	Prefix int
}

// Appended is the receipt of one appended record.
type Appended struct {
	Seq  uint64   // sequence number, 0-based
	Leaf [32]byte // SHA-256(0x00 || record)
	Size uint64   // journal size after the commit holding the record (> Seq)
	// Record is the record as journaled (the caller owns it; the journal
	// keeps no reference).
	Record []byte
}

const (
	stQueued int32 = iota
	stTaken
	stCancelled
)

type request struct {
	entries []Entry
	state   atomic.Int32
	done    chan struct{}
	res     []Appended
	errs    []error // per entry
	err     error   // whole request

	// Append's single entry, result and error, in the request's own
	// allocation (one instead of four for the commonest call).
	entry1 [1]Entry
	res1   [1]Appended
	errs1  [1]error
}

// newRequest is a request for es, or for the single entry one (copied
// in) when es is nil.
func newRequest(es []Entry, one *Entry) *request {
	r := &request{done: make(chan struct{})}
	if es == nil {
		r.entry1[0] = *one
		r.entries, r.res, r.errs = r.entry1[:], r.res1[:], r.errs1[:]
		return r
	}
	r.entries, r.res, r.errs = es, make([]Appended, len(es)), make([]error, len(es))
	return r
}

func (r *request) finish(err error) {
	r.err = err
	close(r.done)
}

// Append journals one entry and returns after the commit holding it is
// synced to disk. Errors: *DigestError (a payload's bytes do not match its
// digest; nothing queued), *BusyError (queue full; nothing queued),
// ctx.Err() (cancelled while still queued; nothing appended: once the
// sequencer has taken the entry Append waits for the commit, which is
// short, so the answer is never a lie), *BuildError (Build failed),
// *TooLargeError, *KeyTooLongError (nothing queued), *DuplicateError
// (Entry.Key already journaled; nothing appended, the error carries the
// original seq), ErrClosed, and ErrFailed (a commit failed: the entry
// may or may not be on disk, reopen to find out; nothing half-applied is
// ever visible).
func (j *Journal) Append(ctx context.Context, e Entry) (Appended, error) {
	res, errs, err := j.submit(ctx, nil, &e)
	if err != nil {
		return Appended{}, err
	}
	if errs[0] != nil {
		return Appended{}, fmt.Errorf("store: append: %w", errs[0])
	}
	return res[0], nil
}

// AppendBatch journals many entries in one atomic commit, in order, with
// consecutive sequence numbers (entries whose Build fails are skipped and
// get none). The result is aligned with es. When some entries failed the
// error is a *BatchError and the results of the other entries are valid;
// any other error means none was appended (see Append). An entry whose
// Key was already journaled, before or earlier in es, gets a
// *DuplicateError at its position in the *BatchError and no sequence
// number; the others still commit. A bad payload digest or a key longer
// than MaxKeyLen in any entry fails the whole call before anything is
// queued.
// A batch larger than Options.MaxQueue is accepted only on an empty queue.
func (j *Journal) AppendBatch(ctx context.Context, es []Entry) ([]Appended, error) {
	if len(es) == 0 {
		return nil, nil
	}
	res, errs, err := j.submit(ctx, es, nil)
	if err != nil {
		return nil, err
	}
	for _, e := range errs {
		if e != nil {
			return res, fmt.Errorf("store: append batch: %w", &BatchError{Errs: errs})
		}
	}
	return res, nil
}

// submit queues es, or the single entry one when es is nil, and waits
// for the answer.
func (j *Journal) submit(ctx context.Context, es []Entry, one *Entry) ([]Appended, []error, error) {
	r := newRequest(es, one)
	es = r.entries
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}
	if f := j.failed.Load(); f != nil {
		return nil, nil, f.err
	}
	for _, e := range es {
		if e.Build == nil {
			return nil, nil, fmt.Errorf("store: append: entry without Build")
		}
		if len(e.Key) > MaxKeyLen {
			return nil, nil, fmt.Errorf("store: append: %w", &KeyTooLongError{Len: len(e.Key), Limit: MaxKeyLen})
		}
		for _, p := range e.Payloads {
			if p.Prefix < 0 || p.Prefix > len(p.Data) {
				return nil, nil, fmt.Errorf("store: append: payload prefix of %d bytes, payload of %d", p.Prefix, len(p.Data))
			}
			if got := sha256.Sum256(p.Data); got != p.Digest {
				return nil, nil, fmt.Errorf("store: append: %w", &DigestError{Want: p.Digest, Got: got})
			}
		}
	}
	need := needBytes(es)
	if err := j.space.reserve(need); err != nil {
		return nil, nil, fmt.Errorf("store: append: %w", err)
	}
	defer j.space.release(need)
	j.qmu.Lock()
	if j.closed {
		j.qmu.Unlock()
		return nil, nil, fmt.Errorf("store: append: %w", ErrClosed)
	}
	if j.pending > 0 && j.pending+len(es) > j.opts.MaxQueue {
		p := j.pending
		j.qmu.Unlock()
		return nil, nil, fmt.Errorf("store: append: %w", &BusyError{Pending: p, Limit: j.opts.MaxQueue})
	}
	j.queue = append(j.queue, r)
	j.pending += len(es)
	j.qmu.Unlock()
	select {
	case j.wake <- struct{}{}:
	default:
	}

	select {
	case <-r.done:
	case <-ctx.Done():
		if r.state.CompareAndSwap(stQueued, stCancelled) {
			j.qmu.Lock()
			j.pending -= len(es)
			j.qmu.Unlock()
			return nil, nil, ctx.Err()
		}
		<-r.done // taken: the commit is under way, wait for the truth
	}
	if r.err != nil {
		return nil, nil, r.err
	}
	return r.res, r.errs, nil
}

// take dequeues whole requests up to MaxBatch entries (at least one).
func (j *Journal) take() []*request {
	j.qmu.Lock()
	defer j.qmu.Unlock()
	var batch []*request
	n, i := 0, 0
	for ; i < len(j.queue); i++ {
		r := j.queue[i]
		if n > 0 && n+len(r.entries) > j.opts.MaxBatch {
			break
		}
		if !r.state.CompareAndSwap(stQueued, stTaken) {
			continue // cancelled; its caller already left
		}
		batch = append(batch, r)
		n += len(r.entries)
		j.pending -= len(r.entries)
	}
	rest := copy(j.queue, j.queue[i:])
	clear(j.queue[rest:])
	j.queue = j.queue[:rest]
	return batch
}

// update is db.Update for the writes outside the sequencer (checkpoints,
// purges, epochs): fn's own error is returned as is; a failure of
// Badger's commit (its log write or sync) fails the journal as a failed
// group commit does, for the same reasons (see commit).
func (j *Journal) update(fn func(txn *badger.Txn) error) error {
	txn := j.db.NewTransaction(true)
	defer txn.Discard()
	if err := fn(txn); err != nil {
		return err
	}
	before := j.blog.syncErrs.Load()
	err := txn.Commit()
	if err == nil && j.blog.syncErrs.Load() != before {
		err = errors.New("badger reported a sync failure during the commit")
	}
	if err != nil {
		f := &failure{err: fmt.Errorf("store: commit: %w: %w", err, ErrFailed), abandon: true}
		j.fail(f)
		j.log.Error("journal commit failed; refusing reads and writes until reopened", "err", err, "size", j.Size())
		return f.err
	}
	return nil
}

// fail records the journal's first failure and closes Failed's channel.
func (j *Journal) fail(f *failure) {
	if j.failed.CompareAndSwap(nil, f) {
		close(j.failedChan)
	}
}

// Failed is closed when a commit has failed: the journal then refuses
// writes (ErrFailed) and Err says why. A daemon watches it to raise the
// alarm and exit, so that a new process reopens the journal from what is
// on disk (see the package doc, Durability and atomicity).
func (j *Journal) Failed() <-chan struct{} { return j.failedChan }

// Err is the failure that made the journal refuse writes (wrapping
// ErrFailed), or nil.
func (j *Journal) Err() error {
	if f := j.failed.Load(); f != nil {
		return f.err
	}
	return nil
}

func callBuild(b func(uint64, [32]byte) ([]byte, error), seq uint64, prev [32]byte) (rec []byte, err error) {
	defer func() {
		if p := recover(); p != nil {
			rec, err = nil, fmt.Errorf("panic: %v", p)
		}
	}()
	rec, err = b(seq, prev)
	if err == nil && len(rec) == 0 {
		err = errors.New("empty record")
	}
	return rec, err
}

// lookupBuilt finds a hash in the sequencer's frontier.
func (j *Journal) lookupBuilt(idx int64) (tlog.Hash, bool) {
	for _, nd := range j.frontier {
		if tlog.StoredHashIndex(nd.level, nd.n) == idx {
			return nd.hash, true
		}
	}
	return tlog.Hash{}, false
}
