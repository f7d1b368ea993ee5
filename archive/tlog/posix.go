package tlog

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"time"

	"github.com/transparency-dev/tessera"
	"github.com/transparency-dev/tessera/api/layout"
	"github.com/transparency-dev/tessera/storage/posix"
	"golang.org/x/mod/sumdb/note"
)

// Defaults of POSIXOptions. The archive appends one group of receipts
// at a time and waits for the checkpoint that covers it, so both are
// latency: Tessera's POSIX driver publishes a checkpoint when an
// integration lands no sooner than CheckpointInterval after the last one
// (its floor, 100ms, here), else at the next interval; a batch waits
// BatchMaxAge for more entries that a lone group's append never brings.
const (
	DefaultCheckpointInterval = 100 * time.Millisecond
	DefaultPOSIXBatchMaxAge   = 5 * time.Millisecond
)

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
	// RepublishInterval, when set, makes Tessera publish a checkpoint
	// this often (at least CheckpointInterval) even when the tree did
	// not grow: a log reopened with a new key signs one at once.
	RepublishInterval time.Duration
	// BatchMaxAge and BatchMaxSize bound how long and how many entries
	// Tessera gathers before it writes them in one batch
	// (DefaultPOSIXBatchMaxAge, DefaultBatchMaxSize when zero).
	BatchMaxAge  time.Duration
	BatchMaxSize uint
	// Logger; slog.Default() when nil.
	Logger *slog.Logger
}

// OpenPOSIX opens (creating if needed) the Tessera log in opts.Dir on
// Tessera's POSIX driver. The log's background work (integration,
// checkpoint publication, removal of stale partial tiles) runs until
// Close. Append returns once the entry bundle, the tiles it changed and
// the tree state were written (temp file with O_SYNC, rename, directory
// fsync); reads never follow a symbolic link.
func OpenPOSIX(ctx context.Context, opts POSIXOptions) (*Tessera, error) {
	if opts.Dir == "" {
		return nil, errors.New("tlog: open: Dir is required")
	}
	if opts.CheckpointInterval == 0 {
		opts.CheckpointInterval = DefaultCheckpointInterval
	}
	if opts.BatchMaxAge == 0 {
		opts.BatchMaxAge = DefaultPOSIXBatchMaxAge
	}
	o := tesseraOptions{signer: opts.Signer, verifier: opts.Verifier, previous: opts.Previous, checkpointInterval: opts.CheckpointInterval,
		republishInterval: opts.RepublishInterval, batchMaxAge: opts.BatchMaxAge, batchMaxSize: opts.BatchMaxSize, logger: opts.Logger}
	if err := o.check(); err != nil {
		return nil, err
	}
	routeKlog()
	drv, err := posix.New(ctx, posix.Config{Path: opts.Dir})
	if err != nil {
		return nil, fmt.Errorf("tlog: open %s: %w", opts.Dir, err)
	}
	p, err := openTessera(ctx, o, drv, func(tessera.LogReader) backend { return posixBackend{dirReader{dir: opts.Dir}} }, nil)
	if err != nil {
		return nil, fmt.Errorf("tlog: open %s: %w", opts.Dir, err)
	}
	return p, nil
}

// posixBackend reads the log's directory without following links. A
// partial tile or bundle that was never written at the width asked
// (the tree grew past it within one batch, or was migrated in one step)
// or was removed once full is read from the full one or the narrowest
// wider one.
type posixBackend struct{ dir dirReader }

func (b posixBackend) checkpoint(context.Context) ([]byte, error) {
	return b.dir.read(layout.CheckpointPath, maxCheckpointBytes)
}

func (b posixBackend) tile(_ context.Context, level, index uint64, w uint8) ([]byte, error) {
	return readPrefix(w, func(w uint8) ([]byte, error) {
		return b.dir.read(layout.TilePath(level, index, w), maxTileBytes)
	})
}

func (b posixBackend) bundle(_ context.Context, index uint64, w uint8) ([]byte, error) {
	return readPrefix(w, func(w uint8) ([]byte, error) {
		return b.dir.read(layout.EntriesPath(index, w), maxBundleBytes)
	})
}

// readPrefix reads the resource of width w, else the full one, else the
// narrowest wider partial one.
func readPrefix(w uint8, read func(uint8) ([]byte, error)) ([]byte, error) {
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
