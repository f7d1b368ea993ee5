package archive

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
)

// The archive log's folders under Options.Dir.
const (
	// JournalLogDir holds the log on the journal engine.
	JournalLogDir = "log"
	// POSIXLogDir holds the log on the posix engine.
	POSIXLogDir = "tlog"
	// MigratedLogDir is where MigrateLog sets the journal aside once its
	// log is in POSIXLogDir: kept until the operator removes it, never
	// opened by the archive.
	MigratedLogDir = "log.migrated"
	// migratingLogDir is where MigrateLog builds the POSIX log before
	// it renames it POSIXLogDir.
	migratingLogDir = "tlog.migrating"
)

// LogEngineError refuses an archive log engine that does not match what
// the data directory holds: a journal log (Dir/log) opened on posix
// (migrate it first: MigrateLog), or a migrated one opened on journal.
type LogEngineError struct {
	Dir        string // the data directory
	Configured string // the engine asked for
	Found      string // the engine of the log in Dir
	Hint       string // what to do
}

func (e *LogEngineError) Error() string {
	return fmt.Sprintf("archive: log engine %s, but %s holds the archive log on the %s engine: %s", e.Configured, e.Dir, e.Found, e.Hint)
}

// ResolveLogEngine is the engine of the archive log in dir for the
// engine configured. Unset (""), it is the default: posix for a new
// data directory, journal for one whose log is in Dir/log (an archive
// created before posix was the default; logged at warning level with
// the command that migrates it when lg is set). A configured engine that
// does not match what dir holds is a *LogEngineError: posix beside a
// journal log (an empty POSIX log is never started next to it), journal
// where only a migrated log is. A dir with log keys but neither log is
// ErrNoLog (the log was lost or moved: no new one is started). mysql is
// returned as it is.
func ResolveLogEngine(dir, engine string, lg *slog.Logger) (string, error) {
	journal, err := isDir(filepath.Join(dir, JournalLogDir))
	if err != nil {
		return "", err
	}
	if engine != LogEngineMySQL && !journal {
		// An archive whose log is gone (moved, not restored) is not
		// started on a new empty one.
		posix, err := isDir(filepath.Join(dir, POSIXLogDir))
		if err != nil {
			return "", err
		}
		keys, err := isDir(filepath.Join(dir, "logkeys"))
		if err != nil {
			return "", err
		}
		if !posix && keys {
			return "", fmt.Errorf("%w in %s, but its log keys are there: restore the log (log/ or tlog/) from a backup", ErrNoLog, dir)
		}
	}
	switch engine {
	case "":
		if !journal {
			return LogEnginePOSIX, nil
		}
		if lg != nil {
			lg.Warn("archive log on the journal engine (an archive created before posix became the default): "+
				"stop the archive and run `edgeseal archive migrate-log` to move it to the posix engine, or set archive_log.engine: journal",
				"dir", filepath.Join(dir, JournalLogDir))
		}
		return LogEngineJournal, nil
	case LogEnginePOSIX:
		if journal {
			return "", &LogEngineError{Dir: dir, Configured: engine, Found: LogEngineJournal,
				Hint: "stop the archive and run `edgeseal archive migrate-log`, or set archive_log.engine: journal"}
		}
	case LogEngineJournal:
		if !journal {
			posix, err := isDir(filepath.Join(dir, POSIXLogDir))
			if err != nil {
				return "", err
			}
			if posix {
				return "", &LogEngineError{Dir: dir, Configured: engine, Found: LogEnginePOSIX,
					Hint: "set archive_log.engine: posix (or remove the setting)"}
			}
		}
	}
	return engine, nil
}

// isDir reports whether path is a folder (not through a link); absent:
// false.
func isDir(path string) (bool, error) {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("archive: %w", err)
	}
	if !fi.IsDir() {
		return false, fmt.Errorf("archive: %s is not a folder", path)
	}
	return true, nil
}

// LogEngine is the engine the archive's log is on (the one
// ResolveLogEngine chose at Open).
func (a *Archive) LogEngine() string { return a.log.engine }
