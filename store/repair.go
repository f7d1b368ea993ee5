package store

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/edgeseal/edgeseal/internal/fsutil"
)

// repairEmptyLogs removes zero-length Badger value-log (*.vlog) and
// memtable write-ahead-log (*.mem) files before Badger opens the
// directory.
//
// Badger creates both kinds of file with O_CREATE and then grows them and
// writes their header: a value log at every open and on rotation, a
// memtable log at every open and each time the memtable fills. A crash
// between the two leaves an empty file, and badger v4.9.6 then refuses to
// open the directory ("Open existing file ... Create a new file" for a
// *.vlog, "while opening memtables ... Create a new file" for a *.mem: it
// treats an empty existing file as an error). An empty file holds no
// entries: no key points into an empty value log and an empty memtable
// log holds no commit, so removing it loses nothing. TestCrashKill9 hit
// the value-log case, BenchmarkOpenAfterKill the memtable one.
func repairEmptyLogs(dir string, log *slog.Logger) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	removed := false
	for _, e := range ents {
		if e.IsDir() || !(strings.HasSuffix(e.Name(), ".vlog") || strings.HasSuffix(e.Name(), ".mem")) {
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
		log.Warn("store: removing empty Badger log file left by a crash", "file", p)
		if err := os.Remove(p); err != nil {
			return fmt.Errorf("remove empty log file: %w", err)
		}
		removed = true
	}
	if !removed {
		return nil
	}
	return fsutil.SyncDir(dir)
}

// fitMemTable raises o.MemTableSize to what the memtable write-ahead logs
// in o.Dir were written with. Badger preallocates a *.mem file at twice
// the memtable size of the process that wrote it and, at open, replays it
// into a memtable of the opener's size: a smaller one overflows its arena
// and badger v4.9.6 exits the whole process ("Arena too small"). That is
// what a tool opening a journal with the default size did after the agent
// (8 MiB memtables) was killed with commits still in its memtable log.
func fitMemTable(o *Options) error {
	ents, err := os.ReadDir(o.Dir)
	if err != nil {
		return err
	}
	for _, e := range ents {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".mem") {
			continue
		}
		fi, err := e.Info()
		if err != nil {
			return err
		}
		if need := fi.Size() / 2; need > o.MemTableSize {
			o.Logger.Info("store: memtable size raised to the one the journal was written with",
				"dir", o.Dir, "file", e.Name(), "from", o.MemTableSize, "to", need)
			o.MemTableSize = need
		}
	}
	return nil
}
