package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/edgeseal/edgeseal/archive/config"
)

// cmdArchiveCheck reads back every logged bundle and checks that the
// archive's log, index and object store agree (archive.Check); exit 1 when
// they do not. An export index that did not open was set aside and is
// rebuilt by the open (a line says so; not a disagreement). It opens the archive's journals, so the daemon must not run
// meanwhile.
func cmdArchiveCheck(ctx context.Context, args []string, stdout io.Writer, log *slog.Logger) error {
	f := newArchiveFlags("archive check")
	pos, err := parseInterleaved(f.fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		return usageErr("archive check: unexpected argument %q", pos[0])
	}
	cfg, err := f.config()
	if err != nil {
		return err
	}
	log = atConfigLevel(log, cfg.Log.Level)
	if err := existingArchive(cfg); err != nil {
		return &exitError{code: 2, err: fmt.Errorf("archive check: %w", err)}
	}
	a, closeArchive, err := openStoppedArchive(ctx, cfg, log, "a check")
	if err != nil {
		return err
	}
	defer closeArchive()
	if aside := a.ExportIndexRebuilt(); aside != "" {
		// Derived data: Open set it aside and rebuilds it; not a disagreement.
		fmt.Fprintf(stdout, "REBUILT  export index: it did not open; set aside as %s and rebuilt from the archive log\n", aside)
	}
	res, err := a.Check(ctx)
	if err != nil {
		return err
	}
	for _, d := range res.Missing {
		fmt.Fprintf(stdout, "MISSING  %s: logged, not in the object store\n", d)
	}
	for _, d := range res.Corrupt {
		fmt.Fprintf(stdout, "CORRUPT  %s: the stored bytes do not hash to the digest\n", d)
	}
	for _, s := range res.Inconsistent {
		fmt.Fprintf(stdout, "INCONSISTENT  %s\n", s)
	}
	fmt.Fprintf(stdout, "%d bundles checked in a log of %d entries: %d missing, %d corrupt, %d disagreements of log and index\n",
		res.Checked, a.LogSize(), len(res.Missing), len(res.Corrupt), len(res.Inconsistent))
	if !res.OK() {
		return &exitError{code: 1, err: errors.New("the archive's log, index and object store disagree")}
	}
	return nil
}

// existingArchive reports an error unless cfg names an archive that exists:
// its data directory and, unless the key is in a token, its key file. A
// check of a mistyped --data-dir then fails instead of creating an empty
// archive (and a new key) and finding it consistent.
func existingArchive(cfg *config.Config) error {
	if fi, err := os.Stat(cfg.DataDir); err != nil {
		return fmt.Errorf("no archive at %s: %w", cfg.DataDir, err)
	} else if !fi.IsDir() {
		return fmt.Errorf("no archive at %s: not a directory", cfg.DataDir)
	}
	if !cfg.KeyInToken() {
		if _, err := os.Lstat(cfg.KeyFile); err != nil {
			return fmt.Errorf("no archive at %s: its key: %w", cfg.DataDir, err)
		}
	}
	return nil
}
