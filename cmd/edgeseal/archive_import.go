package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"

	"github.com/edgeseal/edgeseal/sync/media"
)

// cmdArchiveImport takes bundles brought on removable media through the
// same verification as MQTT and writes the answers to DIR/receipts/. It
// opens the archive's journals, so the daemon must not run meanwhile.
func cmdArchiveImport(ctx context.Context, args []string, stdout io.Writer, log *slog.Logger) error {
	f := newArchiveFlags("archive import")
	pos, err := parseInterleaved(f.fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usageErr("archive import: want one DIR")
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
	if err != nil {
		return err
	}
	defer closeArchive()
	res, err := a.ImportDir(ctx, pos[0])
	var accepted, refused int
	for _, im := range res {
		status := "accepted"
		if !im.Accepted {
			status, refused = "REFUSED: "+im.Err.Error(), refused+1
		} else {
			accepted++
		}
		fmt.Fprintf(stdout, "%s  %s  %s\n", im.File, im.Device, status)
	}
	if err != nil {
		// No summary: it would read as the folder's whole answer.
		return fmt.Errorf("%w (%d accepted, %d refused before it)", err, accepted, refused)
	}
	fmt.Fprintf(stdout, "%d accepted, %d refused; answers in %s\n", accepted, refused, filepath.Join(pos[0], media.ReceiptsDir))
	if refused > 0 {
		return &exitError{code: 1, err: errors.New("some bundles were refused (quarantined; see the rejections)")}
	}
	return nil
}
