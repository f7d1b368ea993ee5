package tlog_test

import (
	"context"
	"database/sql"
	"fmt"
	"testing"
	"time"

	"github.com/edgeseal/edgeseal/archive/tlog"
	"github.com/edgeseal/edgeseal/archive/tlog/tlogtest"
)

// TestMySQLSettledSize: while another process's append transaction
// holds the tree state row (as Tessera's MySQL driver does from its read
// FOR UPDATE to its commit), Size reads the size at once and SettledSize
// waits; once that process's connection is gone (the server rolls its
// transaction back), SettledSize returns the size. After appends it is
// the size they left.
func TestMySQLSettledSize(t *testing.T) {
	m := newMySQLLogs(t)
	ctx := t.Context()
	s, v := tlogtest.Keys(t, "edgeseal-archive")
	dir := t.TempDir()
	l := m.open(t, dir, s, v).(*tlog.Tessera)
	defer closeBoth(t, l)
	for i := range 3 {
		if _, err := l.Append(ctx, []byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := l.SettledSize(ctx); err != nil || n != 3 {
		t.Fatalf("settled size %d, %v; want 3", n, err)
	}

	// The other process: its own connection, an append's transaction
	// under way.
	other, err := sql.Open("mysql", m.dsn[dir])
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	tx, err := other.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	var id int64
	if err := tx.QueryRowContext(ctx, "SELECT CONNECTION_ID()").Scan(&id); err != nil {
		t.Fatal(err)
	}
	var held uint64
	if err := tx.QueryRowContext(ctx, "SELECT `size` FROM `TreeState` WHERE `id` = 0 FOR UPDATE").Scan(&held); err != nil || held != 3 {
		t.Fatalf("tree state locked at %d: %v", held, err)
	}
	sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if n, err := l.Size(sctx); err != nil || n != 3 {
		t.Fatalf("size %d, %v while an append is under way", n, err)
	}
	type res struct {
		n   uint64
		err error
	}
	settled := make(chan res, 1)
	go func() {
		n, err := l.SettledSize(ctx)
		settled <- res{n, err}
	}()
	select {
	case r := <-settled:
		t.Fatalf("settled size %d, %v while another process's append holds the tree state", r.n, r.err)
	case <-time.After(300 * time.Millisecond):
	}
	// The process dies: its connection goes (killed on the server),
	// the server rolls its transaction back.
	killer, err := sql.Open("mysql", m.dsn[dir])
	if err != nil {
		t.Fatal(err)
	}
	defer killer.Close()
	if _, err := killer.ExecContext(ctx, fmt.Sprintf("KILL CONNECTION %d", id)); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-settled:
		if r.err != nil || r.n != 3 {
			t.Fatalf("settled size %d, %v after the other process died", r.n, r.err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("settled size still waiting after the other process's connection closed")
	}
}
