package tlog

import (
	"context"
	"encoding/binary"
	"fmt"

	"github.com/transparency-dev/tessera"
	"github.com/transparency-dev/tessera/api/layout"
	"github.com/transparency-dev/tessera/storage/posix"
)

// migrateWorkers is how many entry bundles are copied at once.
const migrateWorkers = 4

// MigrateToPOSIX copies the first upTo.Size entries of src into the
// Tessera log in dir (created, or resumed where an interrupted migration
// stopped) with Tessera's migration lifecycle, which rebuilds the tree
// from the entry bundles and fails unless its root is upTo.Root. The
// leaves are the same RFC 6962 hashes, so the migrated tree is src's tree:
// every checkpoint src signed, every inclusion proof in a receipt, stays
// valid against it, and a consistency proof links src's checkpoints to
// the new log's. upTo is a checkpoint of src (AwaitCheckpoint), checked
// by the caller. Nothing must append to src or open dir meanwhile;
// OpenPOSIX on dir afterwards publishes the log's first checkpoint.
func MigrateToPOSIX(ctx context.Context, src Log, dir string, upTo Checkpoint) error {
	n, err := src.Size(ctx)
	if err != nil {
		return err
	}
	if upTo.Size > n {
		return &RangeError{What: "migration", A: upTo.Size, B: upTo.Size, Size: n}
	}
	routeKlog()
	drv, err := posix.New(ctx, posix.Config{Path: dir})
	if err != nil {
		return fmt.Errorf("tlog: migrate to %s: %w", dir, err)
	}
	mt, err := tessera.NewMigrationTarget(ctx, drv, tessera.NewMigrationOptions())
	if err != nil {
		return fmt.Errorf("tlog: migrate to %s: %w", dir, err)
	}
	bundle := func(ctx context.Context, index uint64, width uint8) ([]byte, error) {
		return bundleOf(ctx, src, index, width)
	}
	if err := mt.Migrate(ctx, migrateWorkers, upTo.Size, upTo.Root[:], bundle); err != nil {
		return fmt.Errorf("tlog: migrate to %s: %w", dir, err)
	}
	return nil
}

// bundleOf builds the C2SP entry bundle index of width entries (0: 256)
// from src's entries.
func bundleOf(ctx context.Context, src Log, index uint64, width uint8) ([]byte, error) {
	w := uint64(width)
	if w == 0 {
		w = layout.EntryBundleWidth
	}
	var b []byte
	from := index * layout.EntryBundleWidth
	err := src.Entries(ctx, from, from+w, func(_ uint64, e []byte) error {
		b = binary.BigEndian.AppendUint16(b, uint16(len(e)))
		b = append(b, e...)
		return nil
	})
	return b, err
}
