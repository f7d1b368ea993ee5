package media

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strconv"
	"time"

	"github.com/edgeseal/edgeseal/bundle/wire"
	"github.com/edgeseal/edgeseal/internal/fsutil"
)

// Outbox is the agent journal's outbox as Export and ImportReceipts use
// it (*store.Journal): the pending bundles in id order, and the deletion
// of a delivered one.
type Outbox interface {
	Outbox(ctx context.Context, fn func(id string, data []byte) error) error
	DeleteOutbox(ctx context.Context, id string) error
}

// ExportOptions are the inputs of Export.
type ExportOptions struct {
	Dir    string // the medium's folder, existing
	Device string // "<site>/<name>"
	Outbox Outbox
	Out    io.Writer // a line per bundle written, and a summary
	Log    *slog.Logger
	Now    func() time.Time // default time.Now
}

// Export writes every pending outbox bundle to the medium, each durably,
// and the index last. It deletes nothing: the outbox is emptied by
// ImportReceipts. It returns the index written.
func Export(ctx context.Context, o ExportOptions) (*Index, error) {
	now := o.Now
	if now == nil {
		now = time.Now
	}
	idx := Index{Format: Format, Device: o.Device, Exported: now().UTC(), Bundles: []Bundle{}}
	var total int64
	err := o.Outbox.Outbox(ctx, func(id string, data []byte) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		if !ValidID(id) {
			return fmt.Errorf("bundles export: outbox id %q is not a file name", id)
		}
		name := id + BundleSuffix
		if err := fsutil.WriteFileAtomic(filepath.Join(o.Dir, name), data, 0o644); err != nil {
			return fmt.Errorf("bundles export: %w", err)
		}
		cpSize, _ := strconv.ParseUint(id, 10, 64) // agent.OutboxID: the checkpoint size
		idx.Bundles = append(idx.Bundles, Bundle{ID: id, File: name, Bundle: wire.FormatHash(sha256.Sum256(data)),
			Size: int64(len(data)), CheckpointSize: cpSize})
		total += int64(len(data))
		fmt.Fprintf(o.Out, "%s  %s  %d bytes\n", name, wire.FormatHash(sha256.Sum256(data)), len(data))
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("bundles export: %w", err)
	}
	raw, err := json.MarshalIndent(idx, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("bundles export: index: %w", err)
	}
	if err := fsutil.WriteFileAtomic(filepath.Join(o.Dir, IndexFile), append(raw, '\n'), 0o644); err != nil {
		return nil, fmt.Errorf("bundles export: %w", err)
	}
	o.Log.Info("bundles exported to removable media", "dir", o.Dir, "bundles", len(idx.Bundles), "bytes", total)
	fmt.Fprintf(o.Out, "%d bundle(s), %d bytes, exported to %s; the outbox keeps them until their receipts are imported\n",
		len(idx.Bundles), total, o.Dir)
	return &idx, nil
}
