package archive

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/edgeseal/edgeseal/archive/tlog"
	"github.com/edgeseal/edgeseal/internal/fsutil"
	"github.com/edgeseal/edgeseal/store"
)

// MigrateResult is what MigrateLog did.
type MigrateResult struct {
	// Migrated is false when the log was on the posix engine already
	// (nothing done).
	Migrated bool
	// Size and Root are the tree migrated: the journal's, now the POSIX
	// log's.
	Size uint64
	Root [32]byte
	// Aside is the folder the journal was set aside in (Dir/log.migrated).
	Aside string
}

// ErrNoLog: the data directory holds no archive log to migrate.
var ErrNoLog = errors.New("archive: no archive log (neither log/ nor tlog/)")

// MigrateLog moves the archive log of a stopped archive in opts.Dir from
// the journal engine (Dir/log) to the posix one (Dir/tlog), with the
// same entries at the same indexes: the same tree, so every receipt,
// checkpoint and proof issued before stays valid, and the log keys
// (Dir/logkeys, by index), the index and the chain state need no change.
// opts is read as by ReadLog (Dir, Name, Signer or Key; LogEngine unset
// or posix, the engine the archive runs on next).
//
// It holds the journals the daemon holds (index, log keys, log) while it
// works: a running archive makes it fail with store.ErrLocked. It builds
// the POSIX log in Dir/tlog.migrating (tlog.MigrateToPOSIX, which checks
// the root), opens it once so that it publishes its first checkpoint and
// checks that one, renames it Dir/tlog, then renames Dir/log
// Dir/log.migrated (not removed: the operator deletes it). Each step
// leaves a state the journal engine opens (while Dir/log exists it is the
// log, and the posix engine refuses to start beside it) and that running
// MigrateLog again completes: it starts over from the journal. Run on a
// log on posix already, it does nothing.
func MigrateLog(ctx context.Context, opts Options) (MigrateResult, error) {
	if opts.Signer == nil {
		if len(opts.Key) != ed25519.PrivateKeySize {
			return MigrateResult{}, errors.New("archive: migrate log: no signer")
		}
		opts.Signer = opts.Key
	}
	if opts.Name == "" {
		opts.Name = DefaultName
	}
	lg := opts.Logger
	if lg == nil {
		lg = slog.New(slog.DiscardHandler)
	}
	if opts.LogEngine != "" && opts.LogEngine != LogEnginePOSIX {
		return MigrateResult{}, fmt.Errorf("archive: migrate log: the archive is configured for the %s engine: set archive_log.engine: posix (or remove the setting) first", opts.LogEngine)
	}
	journalDir := filepath.Join(opts.Dir, JournalLogDir)
	posixDir := filepath.Join(opts.Dir, POSIXLogDir)
	staging := filepath.Join(opts.Dir, migratingLogDir)
	journal, err := isDir(journalDir)
	if err != nil {
		return MigrateResult{}, err
	}
	if !journal {
		if posix, err := isDir(posixDir); err != nil {
			return MigrateResult{}, err
		} else if posix {
			return MigrateResult{}, nil
		}
		return MigrateResult{}, fmt.Errorf("%w in %s", ErrNoLog, opts.Dir)
	}

	// The daemon's locks: its index and log keys.
	idx, err := store.Open(ctx, store.Options{Dir: filepath.Join(opts.Dir, "index"), Logger: lg.With("journal", "index")})
	if err != nil {
		return MigrateResult{}, fmt.Errorf("archive: migrate log: %w", err)
	}
	defer idx.Close()
	keys, err := store.Open(ctx, store.Options{Dir: filepath.Join(opts.Dir, "logkeys"), Logger: lg.With("journal", "logkeys")})
	if err != nil {
		return MigrateResult{}, fmt.Errorf("archive: migrate log: %w", err)
	}
	defer keys.Close()

	chain, err := loadKeyChain(opts.Dir, opts.Name, opts.Signer)
	if err != nil {
		return MigrateResult{}, err
	}
	st, err := newSignerState(opts.Name, opts.Signer, chain)
	if err != nil {
		return MigrateResult{}, err
	}
	if st.retired, err = retiredKeys(opts.Dir, chain); err != nil {
		return MigrateResult{}, err
	}
	jopts := opts
	jopts.LogEngine = LogEngineJournal
	openJournal, err := logOpener(jopts, lg.With("journal", "log"))
	if err != nil {
		return MigrateResult{}, err
	}
	src, err := openJournal(ctx, st, false)
	if err != nil {
		return MigrateResult{}, fmt.Errorf("archive: migrate log: %w", err)
	}
	res, err := migrateJournal(ctx, opts, st, src, keys.Size(), lg)
	if cerr := src.Close(ctx); err == nil && cerr != nil {
		err = fmt.Errorf("archive: migrate log: %w", cerr)
	}
	if err != nil {
		return MigrateResult{}, err
	}

	// Now the log is in staging, its first checkpoint published and
	// checked: make it the log, then set the journal aside.
	if err := os.Rename(staging, posixDir); err != nil {
		return MigrateResult{}, fmt.Errorf("archive: migrate log: %w", err)
	}
	if err := fsutil.SyncDir(opts.Dir); err != nil {
		return MigrateResult{}, fmt.Errorf("archive: migrate log: %w", err)
	}
	res.Aside = filepath.Join(opts.Dir, MigratedLogDir)
	if _, err := os.Lstat(res.Aside); err == nil {
		res.Aside += "-" + time.Now().UTC().Format("20060102T150405Z")
	}
	if err := os.Rename(journalDir, res.Aside); err != nil {
		return MigrateResult{}, fmt.Errorf("archive: migrate log: %w", err)
	}
	if err := fsutil.SyncDir(opts.Dir); err != nil {
		return MigrateResult{}, fmt.Errorf("archive: migrate log: %w", err)
	}
	lg.Info("archive log migrated to the posix engine", "entries", res.Size, "log", posixDir, "journal_aside", res.Aside)
	return res, nil
}

// migrateJournal copies the journal src into a new POSIX log in
// Dir/tlog.migrating (what an earlier run left there, or in Dir/tlog
// beside the journal, is removed first) and checks its first checkpoint
// is src's tree. keys is the number of log keys recorded: never more
// than the log's entries.
func migrateJournal(ctx context.Context, opts Options, st *signerState, src tlog.Log, keys uint64, lg *slog.Logger) (MigrateResult, error) {
	staging := filepath.Join(opts.Dir, migratingLogDir)
	for _, d := range []string{staging, filepath.Join(opts.Dir, POSIXLogDir)} {
		if ok, err := isDir(d); err != nil {
			return MigrateResult{}, err
		} else if ok {
			// Only a migration writes there while the journal is the
			// log (the posix engine does not start beside it).
			lg.Warn("archive log: removing what an interrupted migration left; migrating again from the journal", "dir", d)
			if err := os.RemoveAll(d); err != nil {
				return MigrateResult{}, fmt.Errorf("archive: migrate log: %w", err)
			}
		}
	}
	n, err := src.Size(ctx)
	if err != nil {
		return MigrateResult{}, fmt.Errorf("archive: migrate log: %w", err)
	}
	if keys > n {
		return MigrateResult{}, fmt.Errorf("archive: migrate log: %d log keys for a log of %d entries: the log keys are not this log's", keys, n)
	}
	res := MigrateResult{Migrated: true, Size: n}
	if n > 0 {
		upTo, err := src.AwaitCheckpoint(ctx, n)
		if err != nil {
			return MigrateResult{}, fmt.Errorf("archive: migrate log: %w", err)
		}
		res.Root = upTo.Root
		lg.Info("archive log: migrating to the posix engine", "entries", n, "into", staging)
		if err := tlog.MigrateToPOSIX(ctx, src, staging, upTo); err != nil {
			return MigrateResult{}, fmt.Errorf("archive: migrate log: %w", err)
		}
	}
	v, prev, err := logVerifiers(opts.Name, st)
	if err != nil {
		return MigrateResult{}, err
	}
	dst, err := tlog.OpenPOSIX(ctx, tlog.POSIXOptions{Dir: staging, Signer: st.note, Verifier: v, Previous: prev,
		CheckpointInterval: opts.LogCheckpointInterval, Logger: lg.With("journal", "log")})
	if err != nil {
		return MigrateResult{}, fmt.Errorf("archive: migrate log: %w", err)
	}
	cctx, cancel := context.WithTimeout(ctx, logCloseWait)
	defer cancel()
	if n > 0 {
		c, err := dst.AwaitCheckpoint(cctx, n)
		if err == nil && (c.Size != n || c.Root != res.Root) {
			err = fmt.Errorf("the migrated log's checkpoint is %d %x, the journal's %d %x", c.Size, c.Root, n, res.Root)
		}
		if err != nil {
			_ = dst.Close(cctx)
			return MigrateResult{}, fmt.Errorf("archive: migrate log: %w", err)
		}
	}
	if err := dst.Close(cctx); err != nil {
		return MigrateResult{}, fmt.Errorf("archive: migrate log: %w", err)
	}
	return res, nil
}
