package state_test

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgeseal/edgeseal/archive/state"
	"github.com/edgeseal/edgeseal/archive/state/statetest"
	"github.com/edgeseal/edgeseal/internal/mariadbtest"
)

func TestBadgerConformance(t *testing.T) {
	dir := t.TempDir()
	statetest.Run(t, func(t *testing.T, name string) state.Store {
		s, err := state.OpenBadger(context.Background(), filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

func TestSQLConformance(t *testing.T) {
	srv := mariadbtest.Start(t)
	var mu sync.Mutex
	dsns := map[string]string{}
	statetest.Run(t, func(t *testing.T, name string) state.Store {
		mu.Lock()
		dsn, ok := dsns[name]
		if !ok {
			dsn = srv.Database(t)
			dsns[name] = dsn
		}
		mu.Unlock()
		db, err := sql.Open("mysql", dsn)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		s, err := state.OpenSQL(context.Background(), db)
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

// TestOpenMySQL: the Store OpenMySQL opens from a DSN keeps what it
// advanced across a Close and an opening of its own, and owns its pool
// (after Close it no longer answers); an unusable DSN is an error that
// does not quote it.
func TestOpenMySQL(t *testing.T) {
	srv := mariadbtest.Start(t)
	dsn := srv.Database(t)
	ctx := t.Context()
	s, err := state.OpenMySQL(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	c, err := s.Advance(ctx, "site/dev", 0, state.Chain{Epoch: 1, Bundles: 1, Size: 3})
	if err != nil || c.Version != 1 {
		t.Fatalf("advance: %+v %v", c, err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, "site/dev"); err == nil {
		t.Fatal("Get after Close: no error; the pool was not closed")
	}
	s, err = state.OpenMySQL(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got, err := s.Get(ctx, "site/dev"); err != nil || got.Version != 1 || got.Bundles != 1 || got.Size != 3 {
		t.Fatalf("reopened: %+v %v", got, err)
	}
	bad := "root:s3cret@unix(" + srv.Dir + "/nosuch.sock)/x"
	if _, err := state.OpenMySQL(ctx, bad); err == nil || strings.Contains(err.Error(), "s3cret") {
		t.Fatalf("a DSN of no server: %v", err)
	}
	if _, err := state.OpenMySQL(ctx, ""); err == nil {
		t.Fatal("an empty DSN opened")
	}
}

// TestSQLLeaseOfADeadHolder: a lease whose connection dies (its process
// killed) is free at once for another process on the database.
func TestSQLLeaseOfADeadHolder(t *testing.T) {
	srv := mariadbtest.Start(t)
	dsn := srv.Database(t)
	ctx := t.Context()
	open := func() *state.SQL {
		s, err := state.OpenMySQL(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	a, b := open(), open()
	if _, err := a.Lock(ctx, "site/dev"); err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	if _, err := b.Lock(short, "site/dev"); err == nil {
		t.Fatal("a second holder while the first lives")
	}
	// The holder's connection dies as with its process: the server kills it.
	db, err := sql.Open("mysql", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var id sql.NullInt64
	if err := db.QueryRowContext(ctx, `SELECT IS_USED_LOCK(?)`, state.LeaseName(a, "site/dev")).Scan(&id); err != nil || !id.Valid {
		t.Fatalf("holder of the lease: %v %v", id, err)
	}
	if _, err := db.ExecContext(ctx, fmt.Sprintf("KILL CONNECTION %d", id.Int64)); err != nil {
		t.Fatal(err)
	}
	wait, cancel2 := context.WithTimeout(ctx, 5*time.Second)
	defer cancel2()
	l, err := b.Lock(wait, "site/dev")
	if err != nil {
		t.Fatalf("lease after its holder's connection died: %v", err)
	}
	if err := l.Release(); err != nil {
		t.Fatal(err)
	}
}

// TestSQLRegistryConformance: the device registry kept in the SQL store.
func TestSQLRegistryConformance(t *testing.T) {
	srv := mariadbtest.Start(t)
	var mu sync.Mutex
	dsns := map[string]string{}
	openDB := func(t *testing.T, name string) *state.SQL {
		mu.Lock()
		dsn, ok := dsns[name]
		if !ok {
			dsn = srv.Database(t)
			dsns[name] = dsn
		}
		mu.Unlock()
		s, err := state.OpenMySQL(t.Context(), dsn)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	t.Run("Registry", func(t *testing.T) {
		statetest.RunRegistry(t, func(t *testing.T, name string) state.Registry { return openDB(t, name).Registry() })
	})
	t.Run("Statements", func(t *testing.T) {
		statetest.RunStatements(t, func(t *testing.T, name string) state.Statements { return openDB(t, name).Statements() })
	})
}
