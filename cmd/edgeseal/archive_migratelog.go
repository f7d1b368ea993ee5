package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"

	"github.com/edgeseal/edgeseal/archive"
	"github.com/edgeseal/edgeseal/archive/archived"
	"github.com/edgeseal/edgeseal/archive/tlog"
	"github.com/edgeseal/edgeseal/store"
)

// cmdArchiveMigrateLog: `edgeseal archive migrate-log [--config FILE |
// --data-dir DIR]` moves the archive log of a stopped archive from the
// journal engine (data_dir/log) to the posix one (data_dir/tlog), the
// same tree (archive.MigrateLog), and sets the journal aside in
// data_dir/log.migrated for the operator to remove. Run again, or on an
// archive on posix already, it changes nothing. Exit 0 done, 1 failed
// (a running daemon: stop it), 2 usage or no archive there.
func cmdArchiveMigrateLog(ctx context.Context, args []string, stdout io.Writer, log *slog.Logger) error {
	f := newArchiveFlags("archive migrate-log")
	pos, err := parseInterleaved(f.fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		return usageErr("archive migrate-log: unexpected argument %q", pos[0])
	}
	cfg, err := f.config()
	if err != nil {
		return err
	}
	log = atConfigLevel(log, cfg.Log.Level)
	if err := existingArchive(cfg); err != nil {
		return &exitError{code: 2, err: fmt.Errorf("archive migrate-log: %w", err)}
	}
	switch cfg.ArchiveLog.Engine {
	case "", archive.LogEnginePOSIX:
	default:
		return usageErr("archive migrate-log: archive_log.engine is %s: set it to posix (or remove it) first; the archive then runs on the migrated log", cfg.ArchiveLog.Engine)
	}
	key, closeKey, err := archived.OpenKeyNoCreate(cfg)
	if err != nil {
		return err
	}
	defer closeKey()
	tlog.RouteLibraryLogs(log)
	res, err := archive.MigrateLog(ctx, archive.Options{Dir: cfg.DataDir, Signer: key, Name: cfg.Name, LogEngine: cfg.ArchiveLog.Engine, Logger: log})
	switch {
	case errors.Is(err, store.ErrLocked):
		return fmt.Errorf("archive migrate-log: %w (stop the archive daemon first)", err)
	case errors.Is(err, archive.ErrNoLog):
		return &exitError{code: 2, err: fmt.Errorf("archive migrate-log: %w", err)}
	case err != nil:
		return err
	case !res.Migrated:
		fmt.Fprintf(stdout, "the archive log in %s is on the posix engine already: nothing to do\n", cfg.DataDir)
		return nil
	}
	fmt.Fprintf(stdout, "migrated the archive log (%d entries, root %x) to the posix engine in %s\n", res.Size, res.Root, cfg.DataDir)
	fmt.Fprintf(stdout, "the journal is set aside in %s: remove it once the archive runs on the migrated log\n", res.Aside)
	return nil
}
