package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/edgeseal/edgeseal/archive"
	"github.com/edgeseal/edgeseal/store"

	"github.com/edgeseal/edgeseal/sync/media"
)

// cmdArchiveImport takes bundles brought on removable media through the
// same verification as MQTT and writes the answers to DIR/receipts/. With
// the daemon stopped it opens the archive's journals; while the daemon
// runs (it holds them) it hands the bundles to the daemon through the
// import request folder (importRunning).
func cmdArchiveImport(ctx context.Context, args []string, stdout io.Writer, log *slog.Logger) error {
	f := newArchiveFlags("archive import")
	wait := f.fs.Duration("wait", 2*time.Minute, "while the archive daemon runs: how long to wait for its answer to each bundle")
	pos, err := parseInterleaved(f.fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usageErr("archive import: want one DIR")
	}
	if *wait <= 0 {
		return usageErr("archive import: --wait must be positive")
	}
	// The folder is read before the archive is opened: a wrong DIR makes
	// nothing (no archive in a fresh --data-dir, no DIR/receipts/).
	names, err := media.BundleFiles(pos[0])
	var se *media.SymlinkError
	switch {
	case errors.As(err, &se):
		// A link on the medium is a refused input, not a usage error.
		return &exitError{code: 1, err: fmt.Errorf("archive import: %w", err)}
	case err != nil:
		return usageErr("archive import: %v", err)
	}
	if len(names) == 0 {
		return usageErr("archive import: %s: no *.tar bundle to import", pos[0])
	}
	cfg, err := f.config()
	if err != nil {
		return err
	}
	log = atConfigLevel(log, cfg.Log.Level)
	a, closeArchive, err := openStoppedArchive(ctx, cfg, log, "an import")
	if errors.Is(err, store.ErrLocked) {
		fmt.Fprintf(stdout, "the archive daemon runs: bundles handed to it through %s\n", archive.ImportRequestDir(cfg.DataDir))
		var sum importSummary
		err := importRunning(ctx, cfg.DataDir, pos[0], names, *wait, func(im archive.Imported) { sum.line(stdout, im) })
		return sum.end(stdout, pos[0], err)
	}
	if err != nil {
		return err
	}
	defer closeArchive()
	res, err := a.ImportDir(ctx, pos[0])
	var sum importSummary
	for _, im := range res {
		sum.line(stdout, im)
	}
	return sum.end(stdout, pos[0], err)
}

// importSummary counts an import's outcomes as their lines are printed.
type importSummary struct{ accepted, duplicate, refused int }

// line prints one bundle's outcome: accepted, duplicate (accepted
// before: the same receipt again) or REFUSED with the checks.
func (s *importSummary) line(w io.Writer, im archive.Imported) {
	status := "accepted"
	switch {
	case !im.Accepted:
		status = "REFUSED: " + im.Err.Error()
		s.refused++
	case im.Duplicate:
		status = "duplicate"
		s.accepted++
		s.duplicate++
	default:
		s.accepted++
	}
	fmt.Fprintf(w, "%s  %s  %s\n", im.File, im.Device, status)
}

// end prints the summary, or on err (a failure that is not a refusal)
// only the counts so far, and returns the command's error.
func (s *importSummary) end(w io.Writer, dir string, err error) error {
	if err != nil {
		// No summary: it would read as the folder's whole answer.
		return fmt.Errorf("%w (%d accepted, %d refused before it)", err, s.accepted, s.refused)
	}
	fmt.Fprintf(w, "%d accepted, %d refused (%d duplicate); answers in %s\n", s.accepted, s.refused, s.duplicate, filepath.Join(dir, media.ReceiptsDir))
	if s.refused > 0 {
		return &exitError{code: 1, err: errors.New("some bundles were refused (quarantined; see the rejections)")}
	}
	return nil
}
