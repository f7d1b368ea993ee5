package tlog

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"sync"
	"time"

	"github.com/transparency-dev/tessera"
	"github.com/transparency-dev/tessera/api"
	"github.com/transparency-dev/tessera/api/layout"
	"github.com/transparency-dev/tessera/client"
	"golang.org/x/mod/sumdb/note"
)

// Defaults of POSIXOptions and MySQLOptions.
const (
	DefaultBatchMaxAge  = 20 * time.Millisecond
	DefaultBatchMaxSize = 256
	// awaitPoll is how often AwaitCheckpoint reads the published checkpoint.
	awaitPoll = 20 * time.Millisecond
)

// ErrBusy: the log pushes back (too many entries sequenced but not yet
// integrated); retry later.
var ErrBusy = errors.New("tlog: log busy")

// Tessera is a Tessera log on one of its storage drivers: the POSIX one
// (OpenPOSIX) or the MySQL one (OpenMySQL). It is a Log and a Source.
type Tessera struct {
	be       backend
	verifier note.Verifier
	previous []note.Verifier
	log      *slog.Logger
	add      tessera.AddFn
	reader   tessera.LogReader
	shutdown func(context.Context) error
	cancel   context.CancelFunc
	done     chan struct{}
	release  func() error // after shutdown: what the driver holds (nil: nothing)

	// closeMu orders Append's check of closed with Close: an Append that
	// saw it open is counted in inflight before Close waits for them.
	closeMu  sync.RWMutex
	closed   bool
	inflight sync.WaitGroup

	mu   sync.Mutex
	last Checkpoint // the last checkpoint read back and verified

	settled func(context.Context) (uint64, error) // SettledSize's read; nil: Size
}

var (
	_ Log    = (*Tessera)(nil)
	_ Source = (*Tessera)(nil)
)

// backend reads what a driver published. Each read is fs.ErrNotExist
// when missing; tile and bundle may return a wider resource than asked
// (ReadTile and ReadEntryBundle cut it), never a narrower one.
type backend interface {
	checkpoint(ctx context.Context) ([]byte, error)
	tile(ctx context.Context, level, index uint64, w uint8) ([]byte, error)
	bundle(ctx context.Context, index uint64, w uint8) ([]byte, error)
}

// tesseraOptions are what OpenPOSIX and OpenMySQL share.
type tesseraOptions struct {
	signer             note.Signer
	verifier           note.Verifier
	previous           []note.Verifier
	checkpointInterval time.Duration
	republishInterval  time.Duration
	batchMaxAge        time.Duration
	batchMaxSize       uint
	logger             *slog.Logger
}

// check refuses missing or mismatched keys and fills defaults.
func (o *tesseraOptions) check() error {
	if o.signer == nil || o.verifier == nil {
		return errors.New("tlog: open: Signer and Verifier are required")
	}
	if o.signer.Name() != o.verifier.Name() || o.signer.KeyHash() != o.verifier.KeyHash() {
		return errors.New("tlog: open: Verifier is not Signer's")
	}
	for _, v := range o.previous {
		if v.Name() != o.signer.Name() {
			return fmt.Errorf("tlog: open: previous key %q is not named %q", v.Name(), o.signer.Name())
		}
	}
	if o.batchMaxAge == 0 {
		o.batchMaxAge = DefaultBatchMaxAge
	}
	if o.batchMaxSize == 0 {
		o.batchMaxSize = DefaultBatchMaxSize
	}
	if o.logger == nil {
		o.logger = slog.Default()
	}
	return nil
}

// openTessera starts Tessera's appender on drv and checks the published
// checkpoint is the log's (signed by its key, for its origin).
func openTessera(ctx context.Context, o tesseraOptions, drv tessera.Driver, be func(tessera.LogReader) backend, release func() error) (*Tessera, error) {
	// The background tasks outlive the opening call; Close ends them.
	bg, cancel := context.WithCancel(context.WithoutCancel(ctx))
	ao := tessera.NewAppendOptions().
		WithCheckpointSigner(o.signer).
		WithCheckpointInterval(o.checkpointInterval).
		WithBatching(o.batchMaxSize, o.batchMaxAge)
	if o.republishInterval > 0 {
		ao = ao.WithCheckpointRepublishInterval(max(o.republishInterval, o.checkpointInterval))
	}
	app, shutdown, reader, err := tessera.NewAppender(bg, drv, ao)
	if err != nil {
		cancel()
		if release != nil {
			_ = release()
		}
		return nil, err
	}
	p := &Tessera{
		be: be(reader), verifier: o.verifier, previous: o.previous, log: o.logger,
		add: app.Add, reader: reader, shutdown: shutdown, cancel: cancel, done: make(chan struct{}), release: release,
	}
	// The published checkpoint must be ours: a log signed by another key
	// or for another origin is refused here rather than served.
	c, err := p.Checkpoint(ctx)
	if err != nil && !errors.Is(err, ErrNoCheckpoint) {
		cancel()
		if release != nil {
			_ = release()
		}
		return nil, err
	}
	p.log.Debug("tlog: opened", "origin", o.signer.Name(), "published", c.Size)
	return p, nil
}

// Append implements Log. It returns when Tessera's future resolves: the
// entry's bundle, the tiles it changed and the tree state are fsynced.
// A cancelled ctx or Close ends the wait; the entry then is not
// acknowledged (it may or may not be in the log).
func (p *Tessera) Append(ctx context.Context, entry []byte) (uint64, error) {
	if err := checkEntry(entry); err != nil {
		return 0, err
	}
	p.closeMu.RLock()
	if p.closed {
		p.closeMu.RUnlock()
		return 0, ErrClosed
	}
	p.inflight.Add(1)
	p.closeMu.RUnlock()
	defer p.inflight.Done()
	fut := p.add(ctx, tessera.NewEntry(append([]byte(nil), entry...)))
	type result struct {
		idx tessera.Index
		err error
	}
	ch := make(chan result, 1)
	go func() {
		idx, err := fut()
		ch <- result{idx, err}
	}()
	select {
	case r := <-ch:
		if r.err != nil {
			if errors.Is(r.err, tessera.ErrPushback) {
				return 0, fmt.Errorf("%w: %v", ErrBusy, r.err)
			}
			return 0, fmt.Errorf("tlog: append: %w", r.err)
		}
		return r.idx.Index, nil
	case <-ctx.Done():
		return 0, fmt.Errorf("tlog: append: %w", ctx.Err())
	case <-p.done:
		return 0, ErrClosed
	}
}

// AppendBatch implements Log: the entries are handed to Tessera in
// order (so they are sequenced in order, with whatever other processes
// append between them), then every future is awaited.
func (p *Tessera) AppendBatch(ctx context.Context, entries [][]byte) ([]uint64, error) {
	for _, e := range entries {
		if err := checkEntry(e); err != nil {
			return nil, err
		}
	}
	p.closeMu.RLock()
	if p.closed {
		p.closeMu.RUnlock()
		return nil, ErrClosed
	}
	p.inflight.Add(1)
	p.closeMu.RUnlock()
	defer p.inflight.Done()
	futs := make([]tessera.IndexFuture, len(entries))
	for i, e := range entries {
		futs[i] = p.add(ctx, tessera.NewEntry(append([]byte(nil), e...)))
	}
	ch := make(chan error, 1)
	idx := make([]uint64, len(entries))
	go func() {
		var errs []error
		for i, f := range futs {
			r, err := f()
			if err != nil {
				errs = append(errs, err)
				continue
			}
			idx[i] = r.Index
		}
		ch <- errors.Join(errs...)
	}()
	select {
	case err := <-ch:
		if err != nil {
			if errors.Is(err, tessera.ErrPushback) {
				return nil, fmt.Errorf("%w: %v", ErrBusy, err)
			}
			return nil, fmt.Errorf("tlog: append: %w", err)
		}
		return idx, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("tlog: append: %w", ctx.Err())
	case <-p.done:
		return nil, ErrClosed
	}
}

// Size implements Log.
func (p *Tessera) Size(ctx context.Context) (uint64, error) {
	n, err := p.reader.IntegratedSize(ctx)
	if err != nil {
		return 0, fmt.Errorf("tlog: size: %w", err)
	}
	return n, nil
}

// SettledSize is Size once every append under way when it is called has
// ended. On the MySQL driver it is a locking read of the tree state row,
// which the transaction of an append (another process's too) holds from
// its first read to its commit: it waits for that transaction to commit,
// or to be rolled back (the server rolls back the transaction of a
// connection that died), where Size, a plain read, would not see an
// append whose commit is under way. On POSIX (one process, its appends
// ordered by the caller) it is Size.
func (p *Tessera) SettledSize(ctx context.Context) (uint64, error) {
	if p.settled == nil {
		return p.Size(ctx)
	}
	n, err := p.settled(ctx)
	if err != nil {
		return 0, fmt.Errorf("tlog: size: %w", err)
	}
	return n, nil
}

// Checkpoint implements Log: the published checkpoint, verified.
func (p *Tessera) Checkpoint(ctx context.Context) (Checkpoint, error) {
	raw, err := p.be.checkpoint(ctx)
	if errors.Is(err, fs.ErrNotExist) {
		return Checkpoint{}, ErrNoCheckpoint
	}
	if err != nil {
		return Checkpoint{}, fmt.Errorf("tlog: checkpoint: %w", err)
	}
	if len(raw) > maxCheckpointBytes {
		return Checkpoint{}, &TooLargeError{Path: layout.CheckpointPath, Limit: maxCheckpointBytes}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if string(raw) == string(p.last.Note) {
		return p.last, nil
	}
	c, err := OpenCheckpoint(raw, p.verifier, p.previous...)
	if err != nil {
		return Checkpoint{}, err
	}
	if c.Size < p.last.Size {
		return Checkpoint{}, fmt.Errorf("tlog: published checkpoint shrank from %d to %d", p.last.Size, c.Size)
	}
	p.last = c
	return c, nil
}

// AwaitCheckpoint implements Log, polling the published checkpoint.
func (p *Tessera) AwaitCheckpoint(ctx context.Context, size uint64) (Checkpoint, error) {
	n, err := p.Size(ctx)
	if err != nil {
		return Checkpoint{}, err
	}
	if size > n {
		return Checkpoint{}, &RangeError{What: "checkpoint", A: size, B: size, Size: n}
	}
	t := time.NewTicker(awaitPoll)
	defer t.Stop()
	for {
		c, err := p.Checkpoint(ctx)
		if err == nil && c.Size >= size {
			return c, nil
		}
		if err != nil && !errors.Is(err, ErrNoCheckpoint) {
			return Checkpoint{}, err
		}
		select {
		case <-ctx.Done():
			return Checkpoint{}, fmt.Errorf("tlog: await checkpoint %d: %w", size, ctx.Err())
		case <-p.done:
			return Checkpoint{}, ErrClosed
		case <-t.C:
		}
	}
}

// InclusionProof implements Log, from the tiles (Tessera's proof
// builder).
func (p *Tessera) InclusionProof(ctx context.Context, index, size uint64) ([][32]byte, error) {
	n, err := p.Size(ctx)
	if err != nil {
		return nil, err
	}
	if index >= size || size > n {
		return nil, &RangeError{What: "inclusion proof", A: index, B: size, Size: n}
	}
	pb, err := client.NewProofBuilder(ctx, size, p.ReadTile)
	if err != nil {
		return nil, fmt.Errorf("tlog: inclusion proof: %w", err)
	}
	hs, err := pb.InclusionProof(ctx, index)
	if err != nil {
		return nil, fmt.Errorf("tlog: inclusion proof %d in %d: %w", index, size, err)
	}
	return hashes(hs)
}

// ConsistencyProof implements Log.
func (p *Tessera) ConsistencyProof(ctx context.Context, oldSize, newSize uint64) ([][32]byte, error) {
	n, err := p.Size(ctx)
	if err != nil {
		return nil, err
	}
	if oldSize > newSize || newSize > n {
		return nil, &RangeError{What: "consistency proof", A: oldSize, B: newSize, Size: n}
	}
	if oldSize == 0 || oldSize == newSize {
		return nil, nil
	}
	pb, err := client.NewProofBuilder(ctx, newSize, p.ReadTile)
	if err != nil {
		return nil, fmt.Errorf("tlog: consistency proof: %w", err)
	}
	hs, err := pb.ConsistencyProof(ctx, oldSize, newSize)
	if err != nil {
		return nil, fmt.Errorf("tlog: consistency proof %d to %d: %w", oldSize, newSize, err)
	}
	return hashes(hs)
}

// Entry implements Log, from its entry bundle.
func (p *Tessera) Entry(ctx context.Context, index uint64) ([]byte, error) {
	n, err := p.Size(ctx)
	if err != nil {
		return nil, err
	}
	if index >= n {
		return nil, &RangeError{What: "entry", A: index, B: n, Size: n}
	}
	bi := index / layout.EntryBundleWidth
	raw, err := p.ReadEntryBundle(ctx, bi, layout.PartialTileSize(0, bi, n))
	if err != nil {
		return nil, err
	}
	var b api.EntryBundle
	if err := b.UnmarshalText(raw); err != nil {
		return nil, fmt.Errorf("tlog: entry bundle %d: %w", bi, err)
	}
	k := index % layout.EntryBundleWidth
	if uint64(len(b.Entries)) <= k {
		return nil, fmt.Errorf("tlog: entry bundle %d holds %d entries, not entry %d", bi, len(b.Entries), index)
	}
	return append([]byte(nil), b.Entries[k]...), nil
}

// Entries implements Log, reading each entry bundle once.
func (p *Tessera) Entries(ctx context.Context, from, to uint64, fn func(uint64, []byte) error) error {
	n, err := p.Size(ctx)
	if err != nil {
		return err
	}
	if from > to || to > n {
		return &RangeError{What: "entries", A: from, B: to, Size: n}
	}
	for i := from; i < to; {
		if err := ctx.Err(); err != nil {
			return err
		}
		bi := i / layout.EntryBundleWidth
		raw, err := p.ReadEntryBundle(ctx, bi, layout.PartialTileSize(0, bi, n))
		if err != nil {
			return err
		}
		var b api.EntryBundle
		if err := b.UnmarshalText(raw); err != nil {
			return fmt.Errorf("tlog: entry bundle %d: %w", bi, err)
		}
		for k := i % layout.EntryBundleWidth; k < uint64(len(b.Entries)) && i < to; k++ {
			if err := fn(i, b.Entries[k]); err != nil {
				return err
			}
			i++
		}
		if i < to && i%layout.EntryBundleWidth != 0 {
			return fmt.Errorf("tlog: entry bundle %d holds %d entries, short of entry %d", bi, len(b.Entries), i)
		}
	}
	return nil
}

// Close implements Log: new appends are refused, those under way are
// waited for (bounded by ctx; then they end with ErrClosed), then
// Tessera's shutdown (every acknowledged entry in a published
// checkpoint), then its background tasks end.
func (p *Tessera) Close(ctx context.Context) error {
	p.closeMu.Lock()
	if p.closed {
		p.closeMu.Unlock()
		return nil
	}
	p.closed = true
	p.closeMu.Unlock()
	drained := make(chan struct{})
	go func() {
		p.inflight.Wait()
		close(drained)
	}()
	select {
	case <-drained:
	case <-ctx.Done():
	}
	err := p.shutdown(ctx)
	close(p.done)
	p.cancel()
	if p.release != nil {
		err = errors.Join(err, p.release())
	}
	if err != nil {
		return fmt.Errorf("tlog: close: %w", err)
	}
	return nil
}

// ReadTile implements Source: the tile of width w (0: full);
// fs.ErrNotExist when missing. A tile's first w hashes never change, so
// a wider one is cut to w.
func (p *Tessera) ReadTile(ctx context.Context, level, index uint64, w uint8) ([]byte, error) {
	b, err := p.be.tile(ctx, level, index, w)
	if err != nil {
		return nil, err
	}
	if len(b) > maxTileBytes || len(b)%32 != 0 {
		return nil, fmt.Errorf("tlog: tile %d/%d holds %d bytes, not whole hashes", level, index, len(b))
	}
	want := int(w) * 32
	if w == 0 {
		want = maxTileBytes
	}
	if len(b) < want {
		return nil, fmt.Errorf("tlog: tile %d/%d holds %d bytes, not %d hashes: %w", level, index, len(b), want/32, fs.ErrNotExist)
	}
	return b[:want], nil
}

// ReadEntryBundle implements Source: the entry bundle of width w (0:
// full), like ReadTile.
func (p *Tessera) ReadEntryBundle(ctx context.Context, index uint64, w uint8) ([]byte, error) {
	b, err := p.be.bundle(ctx, index, w)
	if err != nil {
		return nil, err
	}
	if len(b) > maxBundleBytes {
		return nil, &TooLargeError{Path: layout.EntriesPath(index, w), Limit: maxBundleBytes}
	}
	n := int(w)
	if w == 0 {
		n = layout.EntryBundleWidth
	}
	// Cut after entry n (uint16 length, bytes).
	off := 0
	for range n {
		if off+2 > len(b) || off+2+int(binary.BigEndian.Uint16(b[off:])) > len(b) {
			return nil, fmt.Errorf("tlog: entry bundle %d holds fewer than %d entries", index, n)
		}
		off += 2 + int(binary.BigEndian.Uint16(b[off:]))
	}
	return b[:off], nil
}

// hashes converts proof hashes to arrays.
func hashes(hs [][]byte) ([][32]byte, error) {
	out := make([][32]byte, len(hs))
	for i, h := range hs {
		if len(h) != 32 {
			return nil, fmt.Errorf("tlog: proof hash of %d bytes", len(h))
		}
		out[i] = [32]byte(h)
	}
	return out, nil
}
