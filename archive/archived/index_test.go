package archived_test

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/edgeseal/edgeseal/archive"
	"github.com/edgeseal/edgeseal/bundle/bundletest"
	"github.com/edgeseal/edgeseal/internal/e2etest"
	"github.com/edgeseal/edgeseal/internal/mariadbtest"
	"github.com/edgeseal/edgeseal/sync"
)

// indexDaemon runs the archive daemon of dir with indexYAML (its
// archive_index section), publishes bundles from to to until each has
// its receipt, waits until the export index covers them and returns the
// exports a search finds (each once), then stops the daemon.
func indexDaemon(t *testing.T, dir, indexYAML string, c *bundletest.Chain, enroll bool, from, to int) map[string]bool {
	t.Helper()
	cfg := e2etest.ArchiveConfig(t, dir, "data_dir: data\n"+indexYAML+"mqtt:\n  embedded:\n    listen: 127.0.0.1:0\n")
	ar := e2etest.StartArchive(t, cfg)
	defer ar.Stop(t)
	if enroll {
		e2etest.EnrollChain(t, ar.A, c)
	}
	receipts := make(chan []byte, 16)
	if err := ar.B.Subscribe(sync.ReceiptsTopic("site1", "dev1"), 1, func(_ string, p []byte) { receipts <- bytes.Clone(p) }); err != nil {
		t.Fatal(err)
	}
	for _, b := range c.Bundles[from:to] {
		publish(t, ar, receipts, b)
	}
	if err := ar.A.WaitIndexed(t.Context(), ar.A.LogSize()); err != nil {
		t.Fatal(err)
	}
	found := map[string]bool{}
	q := archive.ExportQuery{Limit: 7}
	for range 1000 {
		p, err := ar.A.SearchExports(t.Context(), q)
		if err != nil {
			t.Fatal(err)
		}
		for _, en := range p.Items {
			if found[en.Export] {
				t.Fatalf("export %s found twice", en.Export)
			}
			found[en.Export] = true
		}
		if q.Cursor = p.Next; q.Cursor == "" {
			return found
		}
	}
	t.Fatal("paging does not end")
	return nil
}

// TestArchiveIndexEngine: with archive_index.engine mysql the daemon
// keeps the export index in the MariaDB database of the DSN file (none
// under data_dir/search); after a restart the exports indexed before are
// found once each, beside those of the bundles accepted since.
func TestArchiveIndexEngine(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the daemon twice")
	}
	dir := t.TempDir()
	dsn := mariadbtest.Start(t).Database(t)
	if err := os.WriteFile(filepath.Join(dir, "index.dsn"), []byte(dsn+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := bundletest.NewChain(t.Context(), nil, 4, bundletest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	yaml := "archive_index:\n  engine: mysql\n  mysql_dsn_file: index.dsn\n"
	first := indexDaemon(t, dir, yaml, c, true, 0, 2)
	if len(first) == 0 {
		t.Fatal("no export found")
	}
	if _, err := os.Stat(filepath.Join(dir, "data", "search")); !os.IsNotExist(err) {
		t.Fatalf("data/search with archive_index.engine mysql: %v", err)
	}
	second := indexDaemon(t, dir, yaml, c, false, 2, 4)
	if len(second) <= len(first) {
		t.Fatalf("after the restart %d exports found, %d before", len(second), len(first))
	}
	for id := range first {
		if !second[id] {
			t.Fatalf("export %s not found after the restart", id)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "data", "search")); !os.IsNotExist(err) {
		t.Fatalf("data/search with archive_index.engine mysql: %v", err)
	}
}
