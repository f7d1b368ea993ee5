package main

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"github.com/edgeseal/edgeseal/archive"
	"github.com/edgeseal/edgeseal/bundle"
	"github.com/edgeseal/edgeseal/sync/media"
)

// importWindow bounds the requests queued and not yet answered: the
// bundles of a large medium are not all copied under the data dir at once.
const importWindow = 16

// importRunning hands the bundle files names of the medium dir to the
// archive daemon running on dataDir (archive.RequestImport), in order, at
// most importWindow queued at a time; for each answer (within wait) it
// writes the signed reply to dir/receipts/ and calls out. The medium is
// read by the same rules as an import with the daemon stopped (no links,
// bounded). It stops at the first failure that is not a refusal, after
// removing its requests not yet taken.
func importRunning(ctx context.Context, dataDir, dir string, names []string, wait time.Duration, out func(archive.Imported)) error {
	if err := media.CheckReplies(dir); err != nil {
		return fmt.Errorf("archive import: %w", err)
	}
	base := time.Now().UnixNano()
	ids := make([]string, len(names))
	for i := range names {
		ids[i] = fmt.Sprintf("%d-%06d", base, i)
	}
	queued := 0 // requests 0..queued-1 are written
	defer func() {
		// Whatever is queued and not answered is taken back; an answer
		// written meanwhile is removed by the daemon later.
		for _, id := range ids[:queued] {
			_ = archive.CancelImport(dataDir, id)
		}
	}()
	replies := ""
	for i, name := range names {
		for ; queued < len(names) && queued < i+importWindow; queued++ {
			raw, err := media.ReadBundle(filepath.Join(dir, names[queued]), archive.ImportReadLimit(bundle.DefaultLimits))
			if err != nil {
				return fmt.Errorf("archive import: %w", err)
			}
			if err := archive.RequestImport(dataDir, ids[queued], raw); err != nil {
				return err
			}
		}
		wctx, cancel := context.WithTimeout(ctx, wait)
		an, err := archive.WaitImport(wctx, dataDir, ids[i], 50*time.Millisecond)
		cancel()
		if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
			return fmt.Errorf("archive import: %s: no answer from the archive daemon within %s (--wait); the bundles not answered were taken back: import again", name, wait)
		}
		if err != nil {
			return fmt.Errorf("archive import: %s: %w", name, err)
		}
		im := archive.Imported{File: name, Device: an.Device, Accepted: true, Duplicate: an.Outcome == archive.ImportDuplicate}
		switch an.Outcome {
		case archive.ImportAccepted, archive.ImportDuplicate:
		case archive.ImportRefused:
			im.Accepted, im.Err = false, errors.New(an.Error)
		case archive.ImportRequestRefused:
			// The daemon did not take the copy this command wrote: no
			// signed answer to write back.
			return fmt.Errorf("archive import: %s: the archive daemon did not take the request: %s", name, an.Error)
		default:
			return fmt.Errorf("archive import: %s: unknown answer %q from the archive daemon", name, an.Outcome)
		}
		if replies == "" {
			if replies, err = media.PrepareReplies(dir); err != nil {
				return fmt.Errorf("archive import: %w", err)
			}
		}
		if im.Reply, err = media.WriteReply(replies, name, im.Accepted, an.Reply); err != nil {
			return err
		}
		out(im)
	}
	return nil
}
