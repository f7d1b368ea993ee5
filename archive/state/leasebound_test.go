package state_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/edgeseal/edgeseal/archive/state"
	"github.com/edgeseal/edgeseal/internal/mariadbtest"
)

// TestSQLLeasesBounded: with SetMaxLeases(n), at most n devices' leases
// are held at once (one connection each); a Lock past the bound waits
// for a lease to be released and fails with the deadline when none is,
// and the next Lock after a Release gets the freed connection.
func TestSQLLeasesBounded(t *testing.T) {
	srv := mariadbtest.Start(t)
	dsn := srv.Database(t)
	ctx := t.Context()
	s, err := state.OpenMySQL(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	const n = 3
	s.SetMaxLeases(n)
	var held []state.Lease
	for i := range n {
		l, err := s.Lock(ctx, fmt.Sprintf("site/dev%d", i))
		if err != nil {
			t.Fatalf("lease %d of %d: %v", i+1, n, err)
		}
		held = append(held, l)
	}
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	if l, err := s.Lock(short, "site/other"); err == nil || !errors.Is(err, context.DeadlineExceeded) {
		if l != nil {
			_ = l.Release()
		}
		t.Fatalf("lease %d past the bound of %d: %v, want it to wait until its deadline", n+1, n, err)
	}
	got := make(chan error, 1)
	go func() {
		wait, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		l, err := s.Lock(wait, "site/other")
		if err == nil {
			err = l.Release()
		}
		got <- err
	}()
	if err := held[0].Release(); err != nil {
		t.Fatal(err)
	}
	if err := <-got; err != nil {
		t.Fatalf("lease after one was released: %v", err)
	}
	for _, l := range held[1:] {
		if err := l.Release(); err != nil {
			t.Fatal(err)
		}
	}
}
