package archived_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/edgeseal/edgeseal/archive/archived"
	"github.com/edgeseal/edgeseal/archive/keystore"
	"github.com/edgeseal/edgeseal/archive/state"
	"github.com/edgeseal/edgeseal/bundle/bundletest"
	"github.com/edgeseal/edgeseal/bundle/merkle"
	"github.com/edgeseal/edgeseal/internal/e2etest"
	"github.com/edgeseal/edgeseal/internal/mariadbtest"
	"github.com/edgeseal/edgeseal/sync"
)

// stateDaemon runs the archive daemon of dir with stateYAML (its
// archive_state section) and publishes bundles until each has its
// receipt, then calls during (when set) with the daemon running; the
// daemon is stopped before it returns.
func stateDaemon(t *testing.T, dir, stateYAML string, c *bundletest.Chain, enroll bool, from, to int, during ...func()) {
	t.Helper()
	cfg := e2etest.ArchiveConfig(t, dir, "data_dir: data\n"+stateYAML+"mqtt:\n  embedded:\n    listen: 127.0.0.1:0\n")
	ar := e2etest.StartArchive(t, cfg)
	if enroll {
		e2etest.EnrollChain(t, ar.A, c)
	}
	receipts := make(chan []byte, 16)
	if err := ar.B.Subscribe(sync.ReceiptsTopic("site1", "dev1"), 1, func(_ string, p []byte) { receipts <- bytes.Clone(p) }); err != nil {
		t.Fatal(err)
	}
	before := ar.A.Stats().Accepted
	for _, b := range c.Bundles[from:to] {
		publish(t, ar, receipts, b)
	}
	if st := ar.A.Stats(); st.Accepted != before+uint64(to-from) || st.Refused != 0 {
		t.Fatalf("bundles %d to %d: %+v\n%s", from+1, to, st, ar.Logs)
	}
	for _, f := range during {
		f()
	}
	ar.Stop(t)
}

// wantChain checks that s holds the chain of c's first n bundles of
// epoch 1 and the checkpoint of each.
func wantChain(t *testing.T, s state.Store, c *bundletest.Chain, n int) {
	t.Helper()
	ctx := t.Context()
	got, err := s.Get(ctx, c.DeviceName())
	if err != nil {
		t.Fatalf("chain state of %s: %v", c.DeviceName(), err)
	}
	if got.Epoch != 1 || got.Bundles != uint64(n) || got.Verify == nil {
		t.Fatalf("chain state: epoch %d, %d bundles, want 1 and %d", got.Epoch, got.Bundles, n)
	}
	for i, b := range c.Bundles[:n] {
		_, st, err := b.Statement()
		if err != nil {
			t.Fatal(err)
		}
		cp, err := merkle.ParseCheckpoint([]byte(st.Predicate.Checkpoint))
		if err != nil {
			t.Fatal(err)
		}
		if rec, err := s.Checkpoint(ctx, c.DeviceName(), 1, cp.Size); err != nil || rec.Root != cp.Root {
			t.Fatalf("checkpoint of bundle %d (size %d): %+v %v", i+1, cp.Size, rec, err)
		}
	}
}

// TestArchiveStateEngine runs the archive daemon on each chain-state
// store archive_state.engine chooses (mysql on a MariaDB server,
// internal/mariadbtest), stopping and restarting it between bundles of
// one device: the bundles after the restart are accepted from the state
// the store kept, which then holds every bundle's checkpoint; with mysql
// nothing is kept under data_dir/state. An archive switched from badger
// to mysql reads its index once into the new store (the device's next
// bundles are accepted and the database holds the whole chain), and
// switched back, into the Badger store it had left.
func TestArchiveStateEngine(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the daemon several times")
	}
	mysqlYAML := "archive_state:\n  engine: mysql\n  mysql_dsn_file: state.dsn\n"
	withDB := func(t *testing.T, dir string) string {
		dsn := mariadbtest.Start(t).Database(t)
		if err := os.WriteFile(filepath.Join(dir, "state.dsn"), []byte(dsn+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		return dsn
	}
	openSQL := func(t *testing.T, dsn string) state.Store {
		s, err := state.OpenMySQL(t.Context(), dsn)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	openBadger := func(t *testing.T, dir string) state.Store {
		s, err := state.OpenBadger(t.Context(), filepath.Join(dir, "data", "state"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	newChain := func(t *testing.T) *bundletest.Chain {
		c, err := bundletest.NewChain(t.Context(), nil, 6, bundletest.Options{})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	engineFile := func(t *testing.T, dir, want string) {
		t.Helper()
		if b, err := os.ReadFile(filepath.Join(dir, "data", "state-engine")); err != nil || strings.TrimSpace(string(b)) != want {
			t.Fatalf("data/state-engine: %q %v, want %s", b, err, want)
		}
	}

	t.Run("badger", func(t *testing.T) {
		dir, c := t.TempDir(), newChain(t)
		stateDaemon(t, dir, "", c, true, 0, 3)
		stateDaemon(t, dir, "archive_state:\n  engine: badger\n", c, false, 3, 6)
		engineFile(t, dir, "badger")
		wantChain(t, openBadger(t, dir), c, 6)
	})
	t.Run("mysql", func(t *testing.T) {
		dir, c := t.TempDir(), newChain(t)
		dsn := withDB(t, dir)
		stateDaemon(t, dir, mysqlYAML, c, true, 0, 3)
		stateDaemon(t, dir, mysqlYAML, c, false, 3, 6)
		if _, err := os.Stat(filepath.Join(dir, "data", "state")); !os.IsNotExist(err) {
			t.Fatalf("data/state with engine mysql: %v", err)
		}
		engineFile(t, dir, "mysql")
		wantChain(t, openSQL(t, dsn), c, 6)
	})
	t.Run("switch", func(t *testing.T) {
		dir, c := t.TempDir(), newChain(t)
		dsn := withDB(t, dir)
		stateDaemon(t, dir, "", c, true, 0, 2)
		stateDaemon(t, dir, mysqlYAML, c, false, 2, 4)
		engineFile(t, dir, "mysql")
		func() {
			s := openSQL(t, dsn)
			wantChain(t, s, c, 4)
			_ = s.Close()
		}()
		stateDaemon(t, dir, "", c, false, 4, 6)
		engineFile(t, dir, "badger")
		wantChain(t, openBadger(t, dir), c, 6)
	})
	t.Run("switch-refused-while-running", func(t *testing.T) {
		// An operator command on the new engine refused while the
		// daemon runs on the old one: the engine stays unrecorded, so
		// the next start on the new engine still fills its store.
		dir, c := t.TempDir(), newChain(t)
		dsn := withDB(t, dir)
		stateDaemon(t, dir, "", c, true, 0, 2, func() {
			cfg := e2etest.ArchiveConfig(t, dir, "data_dir: data\n"+mysqlYAML)
			key, err := keystore.LoadFile(cfg.KeyFile)
			if err != nil {
				t.Fatal(err)
			}
			if _, closeA, err := archived.Open(t.Context(), cfg, key, nil, nil); err == nil {
				_ = closeA()
				t.Fatal("an operator command opened the archive of a running daemon")
			}
			engineFile(t, dir, "badger")
		})
		stateDaemon(t, dir, mysqlYAML, c, false, 2, 4)
		engineFile(t, dir, "mysql")
		wantChain(t, openSQL(t, dsn), c, 4)
	})
}

// TestDSNFiles: the DSN file of archive_state.engine and
// archive_index.engine mysql is refused open to others and as a symbolic
// link, before any database is reached; a DSN of no server fails naming
// the section; a chain-state store that did not open leaves no
// state-engine file.
func TestDSNFiles(t *testing.T) {
	for _, section := range []string{"archive_state", "archive_index"} {
		t.Run(section, func(t *testing.T) {
			dir := t.TempDir()
			key, err := keystore.Generate()
			if err != nil {
				t.Fatal(err)
			}
			dsn := filepath.Join(dir, "db.dsn")
			if err := os.WriteFile(dsn, []byte("root@unix(/nonexistent.sock)/x\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			cfg := e2etest.ArchiveConfig(t, dir, "data_dir: data\n"+section+":\n  engine: mysql\n  mysql_dsn_file: db.dsn\n")
			file := &cfg.ArchiveState.MySQLDSNFile
			if section == "archive_index" {
				file = &cfg.ArchiveIndex.MySQLDSNFile
			}
			open := func() error {
				_, closeA, err := archived.Open(context.Background(), cfg, key, nil, nil)
				if err == nil {
					_ = closeA()
				}
				return err
			}
			if err := open(); err == nil || !strings.Contains(err.Error(), section+".mysql_dsn_file") || !strings.Contains(err.Error(), "0600") {
				t.Fatalf("a DSN file open to others: %v", err)
			}
			if err := os.Chmod(dsn, 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(dsn, filepath.Join(dir, "link.dsn")); err != nil {
				t.Fatal(err)
			}
			*file = filepath.Join(dir, "link.dsn")
			if err := open(); err == nil || !strings.Contains(err.Error(), "symbolic link") {
				t.Fatalf("a DSN file through a symbolic link: %v", err)
			}
			*file = dsn
			if err := open(); err == nil || !strings.Contains(err.Error(), section) {
				t.Fatalf("a DSN of no server: %v", err)
			}
			if _, err := os.Stat(filepath.Join(dir, "data", "state-engine")); !os.IsNotExist(err) {
				t.Fatalf("state-engine written for a store that did not open: %v", err)
			}
		})
	}
}
