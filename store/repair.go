package store

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
)

// repairEmptyValueLogs removes zero-length Badger value-log files before
// Badger opens the directory.
//
// Badger creates a value-log file (at every open and on rotation) with
// O_CREATE and then grows it and writes its header. A crash between the
// two leaves an empty *.vlog, and badger v4.9.6 then refuses to open the
// directory ("Open existing file ... Create a new file": it treats an
// empty existing file as an error). An empty file holds no values, so no
// key can point into it and removing it loses nothing. TestCrashKill9 hit
// this case.
func repairEmptyValueLogs(dir string, log *slog.Logger) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	removed := false
	for _, e := range ents {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".vlog") {
			continue
		}
		fi, err := e.Info()
		if err != nil {
			return err
		}
		if fi.Size() != 0 {
			continue
		}
		p := filepath.Join(dir, e.Name())
		log.Warn("store: removing empty value-log file left by a crash", "file", p)
		if err := os.Remove(p); err != nil {
			return fmt.Errorf("remove empty value log: %w", err)
		}
		removed = true
	}
	if !removed {
		return nil
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
