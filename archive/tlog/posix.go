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
	"github.com/transparency-dev/tessera/storage/posix"
	"golang.org/x/mod/sumdb/note"
)

// Defaults of POSIXOptions.
const (
	DefaultCheckpointInterval = 250 * time.Millisecond
	DefaultBatchMaxAge        = 20 * time.Millisecond
	DefaultBatchMaxSize       = 256
	// awaitPoll is how often AwaitCheckpoint reads the published checkpoint.
	awaitPoll = 20 * time.Millisecond
)

// ErrBusy: the log pushes back (too many entries sequenced but not yet
// integrated); retry later.
var ErrBusy = errors.New("tlog: log busy")

// POSIXOptions configure OpenPOSIX.
type POSIXOptions struct {
	// Dir holds the log (C2SP tlog-tiles layout, Tessera's state in
	// .state/); created if missing. Required.
	Dir string
	// Signer signs checkpoints; its name is the checkpoint origin.
	// Required.
	Signer note.Signer
	// Verifier checks every checkpoint read back from Dir; it must be
	// Signer's. Required.
	Verifier note.Verifier
	// Previous are the log's earlier keys (same name), after a key
	// rotation: the checkpoint they last published still opens, the next
	// one is signed by Signer.
	Previous []note.Verifier
	// CheckpointInterval is the least time between two published
	// checkpoints (at least 100ms); DefaultCheckpointInterval when zero.
	CheckpointInterval time.Duration
	// BatchMaxAge and BatchMaxSize bound how long and how many entries
	// Tessera gathers before it writes them in one batch.
	BatchMaxAge  time.Duration
	BatchMaxSize uint
	// Logger; slog.Default() when nil.
	Logger *slog.Logger
}

// POSIX is a Tessera log on a POSIX file system.
type POSIX struct {
	dir      dirReader
	verifier note.Verifier
	previous []note.Verifier
	log      *slog.Logger
	add      tessera.AddFn
	reader   tessera.LogReader
	shutdown func(context.Context) error
	cancel   context.CancelFunc
	done     chan struct{}

	// closeMu orders Append's check of closed with Close: an Append that
	// saw it open is counted in inflight before Close waits for them.
	closeMu  sync.RWMutex
	closed   bool
	inflight sync.WaitGroup

	mu   sync.Mutex
	last Checkpoint // the last checkpoint read back and verified
}

var _ Log = (*POSIX)(nil)

// OpenPOSIX opens (creating if needed) the Tessera log in opts.Dir. The
// log's background work (integration, checkpoint publication, removal of
// stale partial tiles) runs until Close.
func OpenPOSIX(ctx context.Context, opts POSIXOptions) (*POSIX, error) {
	if opts.Dir == "" || opts.Signer == nil || opts.Verifier == nil {
		return nil, errors.New("tlog: open: Dir, Signer and Verifier are required")
	}
	if opts.Signer.Name() != opts.Verifier.Name() || opts.Signer.KeyHash() != opts.Verifier.KeyHash() {
		return nil, errors.New("tlog: open: Verifier is not Signer's")
	}
	for _, v := range opts.Previous {
		if v.Name() != opts.Signer.Name() {
			return nil, fmt.Errorf("tlog: open: previous key %q is not named %q", v.Name(), opts.Signer.Name())
		}
	}
	if opts.CheckpointInterval == 0 {
		opts.CheckpointInterval = DefaultCheckpointInterval
	}
	if opts.BatchMaxAge == 0 {
		opts.BatchMaxAge = DefaultBatchMaxAge
	}
	if opts.BatchMaxSize == 0 {
		opts.BatchMaxSize = DefaultBatchMaxSize
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	drv, err := posix.New(ctx, posix.Config{Path: opts.Dir})
	if err != nil {
		return nil, fmt.Errorf("tlog: open %s: %w", opts.Dir, err)
	}
	// The background tasks outlive the opening call; Close ends them.
	bg, cancel := context.WithCancel(context.WithoutCancel(ctx))
	ao := tessera.NewAppendOptions().
		WithCheckpointSigner(opts.Signer).
		WithCheckpointInterval(opts.CheckpointInterval).
		WithBatching(opts.BatchMaxSize, opts.BatchMaxAge)
	app, shutdown, reader, err := tessera.NewAppender(bg, drv, ao)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("tlog: open %s: %w", opts.Dir, err)
	}
	p := &POSIX{
		dir: dirReader{dir: opts.Dir}, verifier: opts.Verifier, previous: opts.Previous, log: opts.Logger,
		add: app.Add, reader: reader, shutdown: shutdown, cancel: cancel, done: make(chan struct{}),
	}
	// The checkpoint on disk must be ours: a log signed by another key or
	// for another origin is refused here rather than served.
	c, err := p.Checkpoint(ctx)
	if err != nil && !errors.Is(err, ErrNoCheckpoint) {
		cancel()
		return nil, err
	}
	p.log.Debug("tlog: opened", "dir", opts.Dir, "origin", opts.Signer.Name(), "published", c.Size)
	return p, nil
}

// Append implements Log. It returns when Tessera's future resolves: the
// entry's bundle, the tiles it changed and the tree state are fsynced.
// A cancelled ctx or Close ends the wait; the entry then is not
// acknowledged (it may or may not be in the log).
func (p *POSIX) Append(ctx context.Context, entry []byte) (uint64, error) {
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

// Size implements Log.
func (p *POSIX) Size(ctx context.Context) (uint64, error) {
	n, err := p.reader.IntegratedSize(ctx)
	if err != nil {
		return 0, fmt.Errorf("tlog: size: %w", err)
	}
	return n, nil
}

// Checkpoint implements Log: the checkpoint file, verified.
func (p *POSIX) Checkpoint(context.Context) (Checkpoint, error) {
	raw, err := p.dir.read(layout.CheckpointPath, maxCheckpointBytes)
	if errors.Is(err, fs.ErrNotExist) {
		return Checkpoint{}, ErrNoCheckpoint
	}
	if err != nil {
		return Checkpoint{}, err
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
func (p *POSIX) AwaitCheckpoint(ctx context.Context, size uint64) (Checkpoint, error) {
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
func (p *POSIX) InclusionProof(ctx context.Context, index, size uint64) ([][32]byte, error) {
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
func (p *POSIX) ConsistencyProof(ctx context.Context, oldSize, newSize uint64) ([][32]byte, error) {
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
func (p *POSIX) Entry(ctx context.Context, index uint64) ([]byte, error) {
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
func (p *POSIX) Entries(ctx context.Context, from, to uint64, fn func(uint64, []byte) error) error {
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
func (p *POSIX) Close(ctx context.Context) error {
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
	if err != nil {
		return fmt.Errorf("tlog: close: %w", err)
	}
	return nil
}

// ReadTile returns the tile of width w (0: full); fs.ErrNotExist when
// missing. A partial tile that was never written at that width (the tree
// grew past it within one batch, or was migrated in one step) or was
// removed once full is cut from the full tile or the narrowest wider one:
// a tile's first w hashes never change.
func (p *POSIX) ReadTile(_ context.Context, level, index uint64, w uint8) ([]byte, error) {
	b, err := p.readPrefix(w, func(w uint8) ([]byte, error) {
		return p.dir.read(layout.TilePath(level, index, w), maxTileBytes)
	})
	if err != nil || w == 0 {
		return b, err
	}
	if len(b) < int(w)*32 {
		return nil, fmt.Errorf("tlog: tile %d/%d holds %d bytes, not %d hashes", level, index, len(b), w)
	}
	return b[:int(w)*32], nil
}

// ReadEntryBundle returns the entry bundle of width w, like ReadTile.
func (p *POSIX) ReadEntryBundle(_ context.Context, index uint64, w uint8) ([]byte, error) {
	b, err := p.readPrefix(w, func(w uint8) ([]byte, error) {
		return p.dir.read(layout.EntriesPath(index, w), maxBundleBytes)
	})
	if err != nil || w == 0 {
		return b, err
	}
	// Cut after entry w (uint16 length, bytes).
	off := 0
	for range w {
		if off+2 > len(b) || off+2+int(binary.BigEndian.Uint16(b[off:])) > len(b) {
			return nil, fmt.Errorf("tlog: entry bundle %d holds fewer than %d entries", index, w)
		}
		off += 2 + int(binary.BigEndian.Uint16(b[off:]))
	}
	return b[:off], nil
}

// readPrefix reads the resource of width w, else the full one, else the
// narrowest wider partial one.
func (p *POSIX) readPrefix(w uint8, read func(uint8) ([]byte, error)) ([]byte, error) {
	b, err := read(w)
	if w == 0 || !errors.Is(err, fs.ErrNotExist) {
		return b, err
	}
	if b, err := read(0); !errors.Is(err, fs.ErrNotExist) {
		return b, err
	}
	for wider := int(w) + 1; wider < layout.TileWidth; wider++ {
		if b, err := read(uint8(wider)); !errors.Is(err, fs.ErrNotExist) {
			return b, err
		}
	}
	return nil, err
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
