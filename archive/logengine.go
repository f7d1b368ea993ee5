package archive

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/edgeseal/edgeseal/archive/tlog"
	"github.com/edgeseal/edgeseal/bundle/archivesig"
	"github.com/edgeseal/edgeseal/store"
)

// The engines of the archive log (Options.LogEngine).
const (
	// LogEngineJournal keeps the log in a Badger journal (Dir/log/),
	// checkpoints signed on demand: the default of an archive created
	// before LogEnginePOSIX was (ResolveLogEngine).
	LogEngineJournal = "journal"
	// LogEnginePOSIX keeps it in a Tessera log on the POSIX driver, a
	// C2SP tlog-tiles tree in Dir/tlog/. The default of a new archive.
	LogEnginePOSIX = "posix"
	// LogEngineMySQL keeps it in a Tessera log in the MySQL or MariaDB
	// database Options.LogDSN names.
	LogEngineMySQL = "mysql"
)

// logCloseWait bounds how long closing the log waits for the checkpoint
// covering every acknowledged entry.
const logCloseWait = 30 * time.Second

// archiveLog is the archive's own Merkle log, a tlog.Log on the engine
// configured: one record per accepted bundle (the canonical
// archivesig.ReceiptEntry) and per key announcement and operator
// statement. A log has no unique key, so the deduplication keys of its
// records (logKeyOf) are kept beside it in a Badger journal (Dir/logkeys/)
// whose record i is the key of log entry i: appended after the log
// entries (append, then record), and brought up to the log's size at
// Open from the log's own records, so a crash between the two loses
// nothing. Appends run one at a time. A failed append fails the log for
// good (Failed): no entry is appended twice in this process, and Open
// completes from what is on disk. On the MySQL engine other archive
// processes (replicas) append to the same log: before each append the
// keys are brought up to the log's size, read from the log, so a
// bundle's entry logged by another replica (under the device's lease,
// replica.go: one that died before answering it) is found and keeps its
// index. The keys are this process's index of the shared log, never
// a record of their own.
type archiveLog struct {
	origin string
	lg     *slog.Logger
	keys   *store.Journal
	open   func(ctx context.Context, st *signerState, republish bool) (tlog.Log, error)
	engine string

	lmu     sync.RWMutex // l and unwatch, against a reopening (key rotation)
	l       tlog.Log
	unwatch func()     // stops watching l (watch)
	amu     sync.Mutex // one append (log, then keys) at a time

	known  atomic.Uint64 // the size last read
	failed chan struct{}
	once   sync.Once
	err    atomic.Pointer[error]
}

// openLog opens the archive log on opts' engine (ResolveLogEngine),
// signed by st's key.
func openLog(ctx context.Context, opts Options, st *signerState) (*archiveLog, error) {
	lg := opts.Logger.With("journal", "log")
	var err error
	if opts.LogEngine, err = ResolveLogEngine(opts.Dir, opts.LogEngine, opts.Logger); err != nil {
		return nil, err
	}
	l := &archiveLog{origin: opts.Name, lg: lg, failed: make(chan struct{}), engine: opts.LogEngine}
	if l.open, err = logOpener(opts, lg); err != nil {
		return nil, err
	}
	if l.l, err = l.open(ctx, st, false); err != nil {
		return nil, fmt.Errorf("archive: open log: %w", err)
	}
	l.unwatch = l.watch(l.l)
	if l.keys, err = store.Open(ctx, store.Options{Dir: filepath.Join(opts.Dir, "logkeys"), Logger: opts.Logger.With("journal", "logkeys")}); err != nil {
		_ = l.l.Close(ctx)
		return nil, fmt.Errorf("archive: open log keys: %w", err)
	}
	n, err := l.l.Size(ctx)
	if err != nil {
		_ = l.close()
		return nil, fmt.Errorf("archive: open log: %w", err)
	}
	l.known.Store(n)
	if err := l.recordKeys(ctx, n, nil); err != nil {
		_ = l.close()
		return nil, err
	}
	return l, nil
}

// logOpener returns the function that opens opts' engine's log (one
// ResolveLogEngine returned) signed by a signer state (republish: a
// Tessera log opened to sign its current tree at once).
func logOpener(opts Options, lg *slog.Logger) (func(ctx context.Context, st *signerState, republish bool) (tlog.Log, error), error) {
	switch opts.LogEngine {
	case LogEngineJournal:
		return func(ctx context.Context, st *signerState, republish bool) (tlog.Log, error) {
			j, err := store.Open(ctx, store.Options{Dir: filepath.Join(opts.Dir, JournalLogDir), Logger: lg})
			if err != nil {
				return nil, err
			}
			v, prev, err := logVerifiers(opts.Name, st)
			if err != nil {
				_ = j.Close()
				return nil, err
			}
			tl, err := tlog.NewJournal(j, st.note, v, prev...)
			if err != nil {
				_ = j.Close()
				return nil, err
			}
			return tl, nil
		}, nil
	case LogEnginePOSIX:
		return func(ctx context.Context, st *signerState, republish bool) (tlog.Log, error) {
			v, prev, err := logVerifiers(opts.Name, st)
			if err != nil {
				return nil, err
			}
			return tlog.OpenPOSIX(ctx, tlog.POSIXOptions{Dir: filepath.Join(opts.Dir, POSIXLogDir), Signer: st.note, Verifier: v, Previous: prev,
				CheckpointInterval: opts.LogCheckpointInterval, RepublishInterval: republishOf(republish), Logger: lg})
		}, nil
	case LogEngineMySQL:
		if opts.LogDSN == "" {
			return nil, errors.New("archive: log engine mysql: no DSN")
		}
		return func(ctx context.Context, st *signerState, republish bool) (tlog.Log, error) {
			v, prev, err := logVerifiers(opts.Name, st)
			if err != nil {
				return nil, err
			}
			return tlog.OpenMySQL(ctx, tlog.MySQLOptions{DSN: opts.LogDSN, Signer: st.note, Verifier: v, Previous: prev,
				CheckpointInterval: opts.LogCheckpointInterval, RepublishInterval: republishOf(republish), Logger: lg})
		}, nil
	default:
		return nil, fmt.Errorf("archive: log engine %q: want journal, posix or mysql", opts.LogEngine)
	}
}

// logVerifiers are the note verifiers of st's key and of the keys it
// retired (the chain's and those kept in RetiredKeysFile).
func logVerifiers(name string, st *signerState) (note.Verifier, []note.Verifier, error) {
	v, err := note.NewVerifier(st.vkey)
	if err != nil {
		return nil, nil, fmt.Errorf("archive: log key: %w", err)
	}
	var prev []note.Verifier
	seen := map[uint32]bool{v.KeyHash(): true}
	addKey := func(pub ed25519.PublicKey) error {
		vk, err := note.NewEd25519VerifierKey(name, pub)
		if err != nil {
			return err
		}
		pv, err := note.NewVerifier(vk)
		if err != nil {
			return err
		}
		if !seen[pv.KeyHash()] {
			seen[pv.KeyHash()] = true
			prev = append(prev, pv)
		}
		return nil
	}
	for _, raw := range st.chain {
		if _, an, err := archivesig.ParseArchiveKey(raw); err == nil && len(an.NewKey) == ed25519.PublicKeySize {
			if err := addKey(an.NewKey); err != nil {
				return nil, nil, fmt.Errorf("archive: log key: %w", err)
			}
		}
	}
	for _, pub := range st.retired {
		if err := addKey(pub); err != nil {
			return nil, nil, fmt.Errorf("archive: log key: %w", err)
		}
	}
	return v, prev, nil
}

// fail fails the log for good.
func (l *archiveLog) fail(err error) {
	l.once.Do(func() {
		l.err.Store(&err)
		close(l.failed)
	})
}

// Err is why the log failed, or nil.
func (l *archiveLog) Err() error {
	if p := l.err.Load(); p != nil {
		return *p
	}
	if l.keys != nil {
		return l.keys.Err()
	}
	return nil
}

// Failed is closed when an append to the log or its keys failed.
func (l *archiveLog) Failed() <-chan struct{} { return l.failed }

// logged is the result of one record given to append: its index, and
// old, the record logged before under the same key (nil: appended now).
type logged struct {
	seq uint64
	old []byte
}

// append appends recs in order, each unless a record of the same key
// (logKeyOf) is logged already: then that one's index and bytes are
// returned and the caller decides. It returns once the new entries are
// durable and their keys recorded.
func (l *archiveLog) append(ctx context.Context, recs ...[]byte) ([]logged, error) {
	out, recorded, err := l.appendAsync(ctx, recs...)
	if err != nil {
		return nil, err
	}
	if err := recorded(); err != nil {
		return nil, err
	}
	return out, nil
}

// appendAsync is append returning once the new entries are durable;
// their keys are being recorded meanwhile, and recorded waits for that
// (its error fails the log). No other append starts before.
func (l *archiveLog) appendAsync(ctx context.Context, recs ...[]byte) (_ []logged, recorded func() error, _ error) {
	l.amu.Lock()
	async := false
	defer func() {
		if !async {
			l.amu.Unlock()
		}
	}()
	if err := l.Err(); err != nil {
		return nil, nil, fmt.Errorf("archive: log failed: %w", err)
	}
	l.lmu.RLock()
	defer l.lmu.RUnlock()
	if l.engine == LogEngineMySQL {
		// Part of the append: a failure fails the log as a failed
		// append does (a restart; Open completes the keys). The size
		// once every append under way has ended (settledSizer): see
		// logkeys.go for why.
		n, err := settledSize(ctx, l.l)
		if err == nil {
			err = l.recordKeys(ctx, n, nil)
		}
		if err != nil {
			if ctx.Err() == nil {
				l.fail(err)
			}
			return nil, nil, fmt.Errorf("archive: log: %w", err)
		}
	}
	out := make([]logged, len(recs))
	var fresh [][]byte
	var at []int
	inBatch := map[string]int{}
	for i, rec := range recs {
		k := logKeyOf(rec)
		if k != nil {
			if _, ok := inBatch[string(k)]; ok {
				continue // resolved below
			}
			seq, err := l.keys.Lookup(k)
			switch {
			case err == nil:
				old, err := l.l.Entry(ctx, seq)
				if err != nil {
					return nil, nil, fmt.Errorf("archive: log record %d: %w", seq, err)
				}
				out[i] = logged{seq: seq, old: old}
				continue
			case !errors.Is(err, store.ErrNotFound):
				return nil, nil, fmt.Errorf("archive: log keys: %w", err)
			}
			inBatch[string(k)] = i
		}
		fresh = append(fresh, rec)
		at = append(at, i)
	}
	for i, rec := range recs { // repeats within recs: the first one's
		if k := logKeyOf(rec); k != nil {
			if j, ok := inBatch[string(k)]; ok && j != i {
				out[i] = logged{old: recs[j]}
			}
		}
	}
	if len(fresh) == 0 {
		return out, func() error { return nil }, nil
	}
	idx, err := l.l.AppendBatch(ctx, fresh)
	if err != nil {
		if _, ok := errors.AsType[*tlog.EntryTooLargeError](err); !ok {
			l.fail(err) // some may be in the log, their keys not recorded
		}
		return nil, nil, fmt.Errorf("archive: log: %w", err)
	}
	mine := make(map[uint64][]byte, len(idx))
	top := uint64(0)
	for k, i := range at {
		out[i] = logged{seq: idx[k]}
		mine[idx[k]] = fresh[k]
		top = max(top, idx[k]+1)
	}
	for i, rec := range recs {
		if k := logKeyOf(rec); k != nil {
			if j, ok := inBatch[string(k)]; ok && j != i {
				out[i].seq = out[j].seq
			}
		}
	}
	if top > l.known.Load() {
		l.known.Store(top)
	}
	done := make(chan error, 1)
	async = true
	go func() {
		defer l.amu.Unlock()
		l.lmu.RLock()
		defer l.lmu.RUnlock()
		err := l.recordKeys(context.WithoutCancel(ctx), top, mine)
		if err != nil {
			l.fail(err)
		}
		done <- err
	}()
	return out, sync.OnceValue(func() error { return <-done }), nil
}

// size is the log's size (the last one read when it cannot be read).
func (l *archiveLog) size() uint64 {
	l.lmu.RLock()
	defer l.lmu.RUnlock()
	n, err := l.l.Size(context.Background())
	if err != nil {
		l.lg.Error("archive log size", "err", err)
		return l.known.Load()
	}
	l.known.Store(n)
	return n
}

// checkpoint returns the signed note of a published checkpoint that
// covers size entries, waiting for it.
func (l *archiveLog) checkpoint(ctx context.Context, size uint64) ([]byte, error) {
	c, err := l.awaitCheckpoint(ctx, size)
	if err != nil {
		return nil, err
	}
	return c.Note, nil
}

// awaitCheckpoint waits for a published checkpoint that covers size.
func (l *archiveLog) awaitCheckpoint(ctx context.Context, size uint64) (tlog.Checkpoint, error) {
	l.lmu.RLock()
	defer l.lmu.RUnlock()
	c, err := l.l.AwaitCheckpoint(ctx, size)
	if err != nil {
		if ctx.Err() == nil && !errors.Is(err, tlog.ErrClosed) {
			if _, ok := errors.AsType[*tlog.RangeError](err); !ok {
				l.fail(err) // a checkpoint not signed or stored
			}
		}
		return tlog.Checkpoint{}, fmt.Errorf("archive: log checkpoint: %w", err)
	}
	return c, nil
}

// inclusionProof proves entry index in the tree of size.
func (l *archiveLog) inclusionProof(ctx context.Context, index, size uint64) ([][32]byte, error) {
	l.lmu.RLock()
	defer l.lmu.RUnlock()
	return l.l.InclusionProof(ctx, index, size)
}

// consistencyProof proves the tree of old entries a prefix of size's.
func (l *archiveLog) consistencyProof(ctx context.Context, old, size uint64) ([][32]byte, error) {
	l.lmu.RLock()
	defer l.lmu.RUnlock()
	return l.l.ConsistencyProof(ctx, old, size)
}

// record returns entry index.
func (l *archiveLog) record(ctx context.Context, index uint64) ([]byte, error) {
	l.lmu.RLock()
	defer l.lmu.RUnlock()
	return l.l.Entry(ctx, index)
}

// records calls fn with each entry in [from, to).
func (l *archiveLog) records(ctx context.Context, from, to uint64, fn func(uint64, []byte) error) error {
	l.lmu.RLock()
	defer l.lmu.RUnlock()
	return l.l.Entries(ctx, from, to, fn)
}

// all calls fn with every entry of the log as it is now.
func (l *archiveLog) all(ctx context.Context, fn func(uint64, []byte) error) error {
	return l.records(ctx, 0, l.size(), fn)
}

// reopen closes the log and opens it again signed by st's key (a key
// rotation: the keys st retired verify the checkpoints published
// before). Nothing is appended meanwhile.
func (l *archiveLog) reopen(ctx context.Context, st *signerState) error {
	l.amu.Lock()
	defer l.amu.Unlock()
	l.lmu.Lock()
	defer l.lmu.Unlock()
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), logCloseWait)
	defer cancel()
	l.unwatch()
	if err := l.l.Close(cctx); err != nil {
		l.fail(err)
		return fmt.Errorf("archive: reopen log: %w", err)
	}
	nl, err := l.open(ctx, st, l.engine != LogEngineJournal)
	if err == nil && l.engine != LogEngineJournal {
		// Tessera publishes only when the tree grows: opened to
		// republish, it signs the current tree with the new key; then
		// it is opened as usual.
		err = awaitSignedBy(ctx, nl, st)
		if cerr := nl.Close(cctx); err == nil {
			err = cerr
		}
		if err == nil {
			nl, err = l.open(ctx, st, false)
		}
	}
	if err != nil {
		l.fail(err)
		return fmt.Errorf("archive: reopen log: %w", err)
	}
	l.l = nl
	l.unwatch = l.watch(nl)
	return nil
}

// watch fails the log when tl fails outside an append (tlog.Failer: a
// background write of the journal engine, a compaction or a flush,
// failed): the log then refuses everything, so the archive must stop as
// it does for a failed append. The returned function stops watching.
func (l *archiveLog) watch(tl tlog.Log) (unwatch func()) {
	f, ok := tl.(tlog.Failer)
	if !ok {
		return func() {}
	}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		select {
		case <-f.Failed():
			l.fail(fmt.Errorf("archive: log failed: %w", f.Err()))
		case <-stop:
		}
	}()
	var once sync.Once
	return func() {
		once.Do(func() { close(stop) })
		<-done
	}
}

// republishOf is the RepublishInterval of a Tessera log opened to
// republish its checkpoint (the least Tessera allows: the checkpoint
// interval).
func republishOf(republish bool) time.Duration {
	if republish {
		return time.Nanosecond
	}
	return 0
}

// awaitSignedBy waits (bounded) until l's published checkpoint is
// signed by st's key.
func awaitSignedBy(ctx context.Context, l tlog.Log, st *signerState) error {
	v, err := note.NewVerifier(st.vkey)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, logCloseWait)
	defer cancel()
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for {
		c, err := l.Checkpoint(ctx)
		if err == nil {
			if _, err := note.Open(c.Note, note.VerifierList(v)); err == nil {
				return nil
			}
		} else if !errors.Is(err, tlog.ErrNoCheckpoint) {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("no checkpoint signed by the new key: %w", ctx.Err())
		case <-t.C:
		}
	}
}

// close closes the log (waiting, bounded, for the checkpoint of every
// acknowledged entry) and its keys.
func (l *archiveLog) close() error {
	wait := logCloseWait
	if l.Err() != nil {
		wait = time.Second // failed: nothing more will be published
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	l.amu.Lock()
	defer l.amu.Unlock()
	l.lmu.Lock()
	defer l.lmu.Unlock()
	var errs []error
	if l.l != nil {
		l.unwatch()
		errs = append(errs, l.l.Close(ctx))
		l.l = nil
	}
	if l.keys != nil {
		errs = append(errs, l.keys.Close())
	}
	return errors.Join(errs...)
}
