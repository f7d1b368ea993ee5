package archived_test

import (
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/edgeseal/edgeseal/archive"
	"github.com/edgeseal/edgeseal/archive/archived"
	"github.com/edgeseal/edgeseal/archive/keystore"
	"github.com/edgeseal/edgeseal/internal/e2etest"
)

// TestOpenLogEngine: an operator command's Open (archive check, import,
// key rotate) takes the archive log's engine from archive_log; the DSN
// file must be 0600; an archive whose engine the config changed since it
// was created does not open; unset, the engine is the one data_dir holds.
func TestOpenLogEngine(t *testing.T) {
	dir := t.TempDir()
	key, err := keystore.Generate()
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	cfg := e2etest.ArchiveConfig(t, dir, "data_dir: data\narchive_log:\n  engine: posix\n")
	a, closeA, err := archived.Open(t.Context(), cfg, key, nil, log)
	if err != nil {
		t.Fatal(err)
	}
	if res, err := a.Check(t.Context()); err != nil || !res.OK() {
		t.Fatalf("check: %+v %v", res, err)
	}
	next, err := keystore.Generate()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.RotateKey(t.Context(), next, 0); err != nil { // one log entry
		t.Fatal(err)
	}
	key = next
	if err := closeA(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "data", "tlog", "checkpoint")); err != nil {
		t.Fatalf("posix engine: %v", err)
	}

	cfg = e2etest.ArchiveConfig(t, dir, "data_dir: data\narchive_log:\n  engine: journal\n")
	if _, closeA, err := archived.Open(t.Context(), cfg, key, nil, log); err == nil || !strings.Contains(err.Error(), "on the posix engine") {
		if closeA != nil {
			_ = closeA()
		}
		t.Fatalf("an archive created on posix opened on the journal engine: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "data", "log")); err == nil {
		t.Fatal("a refused journal open created data/log")
	}
	cfg = e2etest.ArchiveConfig(t, dir, "data_dir: data\n") // the default: what data_dir holds
	a, closeA, err = archived.Open(t.Context(), cfg, key, nil, log)
	if err != nil || a.LogEngine() != archive.LogEnginePOSIX || a.LogSize() != 1 {
		t.Fatalf("the default engine on a posix archive: %v", err)
	}
	if err := closeA(); err != nil {
		t.Fatal(err)
	}

	if err := os.WriteFile(filepath.Join(dir, "log.dsn"), []byte("root@unix(/nonexistent.sock)/x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg = e2etest.ArchiveConfig(t, dir, "data_dir: data\narchive_log:\n  engine: mysql\n  mysql_dsn_file: log.dsn\n")
	if _, _, err := archived.Open(t.Context(), cfg, key, nil, log); err == nil || !strings.Contains(err.Error(), "archive_log.mysql_dsn_file") {
		t.Fatalf("a DSN file open to others: %v", err)
	}
}
