package state_test

import (
	"context"
	"database/sql"
	"path/filepath"
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
