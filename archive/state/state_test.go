package state_test

import (
	"context"
	"database/sql"
	"path/filepath"
	"strings"
	"sync"
	"testing"

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
