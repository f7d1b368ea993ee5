package tlog_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/edgeseal/edgeseal/archive/tlog"
	"github.com/edgeseal/edgeseal/archive/tlog/tlogtest"
	"github.com/edgeseal/edgeseal/bundle/merkle"
	"github.com/edgeseal/edgeseal/internal/mariadbtest"
)

// mysqlLogs opens logs on one real MariaDB server: each directory the
// suite names is one fresh database, reopened by the same directory.
type mysqlLogs struct {
	srv *mariadbtest.Server
	mu  sync.Mutex
	dsn map[string]string
}

func newMySQLLogs(t *testing.T) *mysqlLogs {
	return &mysqlLogs{srv: mariadbtest.Start(t), dsn: map[string]string{}}
}

func (m *mysqlLogs) open(t testing.TB, dir string, s note.Signer, v note.Verifier) tlog.Log {
	t.Helper()
	m.mu.Lock()
	dsn, ok := m.dsn[dir]
	if !ok {
		dsn = m.srv.Database(t)
		m.dsn[dir] = dsn
	}
	m.mu.Unlock()
	l, err := tlog.OpenMySQL(context.Background(), tlog.MySQLOptions{DSN: dsn, Signer: s, Verifier: v})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// TestMySQLConformance runs the conformance suite on Tessera's MySQL
// driver against a real mariadbd.
func TestMySQLConformance(t *testing.T) {
	m := newMySQLLogs(t)
	s, v := tlogtest.Keys(t, "edgeseal-archive")
	tlogtest.Run(t, tlogtest.Suite{Open: func(t *testing.T, dir string, s note.Signer, v note.Verifier) tlog.Log {
		return m.open(t, dir, s, v)
	}, Signer: s, Verifier: v})

	// Two processes' logs on one database (replicas): their appends get
	// distinct indices of one tree, and each sees the other's entries.
	t.Run("TwoAppenders", func(t *testing.T) {
		ctx := t.Context()
		dir := t.TempDir()
		a, b := m.open(t, dir, s, v), m.open(t, dir, s, v)
		defer closeBoth(t, a, b)
		got := map[uint64][]byte{}
		var mu sync.Mutex
		var wg sync.WaitGroup
		for k, l := range []tlog.Log{a, b} {
			for w := range 8 {
				wg.Go(func() {
					for i := range 25 {
						e := []byte{byte(k), byte(w), byte(i)}
						idx, err := l.Append(ctx, e)
						mu.Lock()
						if _, dup := got[idx]; err != nil || dup {
							t.Errorf("append from log %d: %d, %v (duplicate %v)", k, idx, err, dup)
						}
						got[idx] = e
						mu.Unlock()
					}
				})
			}
		}
		wg.Wait()
		if t.Failed() {
			t.FailNow()
		}
		n := uint64(len(got))
		leaves := make([][32]byte, n)
		for i := range n {
			e, ok := got[i]
			if !ok {
				t.Fatalf("no entry at %d of %d", i, n)
			}
			leaves[i] = merkle.LeafHash(e)
		}
		// Each log reads the other's entries.
		for i := range n {
			e, err := []tlog.Log{a, b}[i%2].Entry(ctx, i)
			if err != nil || string(e) != string(got[i]) {
				t.Fatalf("entry %d read back as %x, %v; appended %x", i, e, err, got[i])
			}
		}
		for _, l := range []tlog.Log{a, b} {
			c, err := l.AwaitCheckpoint(ctx, n)
			if err != nil {
				t.Fatal(err)
			}
			if c.Size != n || c.Root != merkle.RangeRoot(merkle.CompactRange(leaves)) {
				t.Fatalf("checkpoint %d %x, want %d entries' root", c.Size, c.Root, n)
			}
		}
	})
}

// TestMySQLServerKilled kills mariadbd (SIGKILL) while appends are under
// way: once it is restarted, the reopened log holds every acknowledged
// entry at its index, the tree's root is that of the entries, and it
// takes more. Options and a database whose checkpoint another key
// signed are refused.
func TestMySQLServerKilled(t *testing.T) {
	m := newMySQLLogs(t)
	ctx := t.Context()
	s, v := tlogtest.Keys(t, "edgeseal-archive")
	s2, v2 := tlogtest.Keys(t, "edgeseal-archive")
	dir := t.TempDir()
	l := m.open(t, dir, s, v)
	dsn := m.dsn[dir]
	for _, o := range []tlog.MySQLOptions{
		{Signer: s, Verifier: v},
		{DSN: dsn, Verifier: v},
		{DSN: dsn, Signer: s, Verifier: v2},
		{DSN: dsn, Signer: s, Verifier: v, CheckpointInterval: 100 * time.Millisecond},
		{DSN: m.srv.DSN("no_such_database"), Signer: s, Verifier: v},
	} {
		if l, err := tlog.OpenMySQL(ctx, o); err == nil {
			_ = l.Close(ctx)
			t.Errorf("OpenMySQL(%+v) succeeded", o)
		}
	}

	var mu sync.Mutex
	acked := map[uint64][]byte{}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for w := range 8 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				e := fmt.Appendf(nil, "worker %d entry %d", w, i)
				idx, err := l.Append(ctx, e)
				if err != nil {
					return // the server is gone: not acknowledged
				}
				mu.Lock()
				acked[idx] = e
				mu.Unlock()
			}
		})
	}
	for {
		mu.Lock()
		n := len(acked)
		mu.Unlock()
		if n >= 200 {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	m.srv.Kill()
	close(stop)
	wg.Wait()
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	_ = l.Close(cctx) // the server is gone: its error is expected
	cancel()
	m.srv.Restart()

	l = m.open(t, dir, s, v)
	defer closeBoth(t, l)
	n, err := l.Size(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if n < uint64(len(acked)) {
		t.Fatalf("log of %d entries after the kill, %d were acknowledged", n, len(acked))
	}
	leaves := make([][32]byte, n)
	if err := l.Entries(ctx, 0, n, func(i uint64, e []byte) error {
		if want, ok := acked[i]; ok && string(e) != string(want) {
			return fmt.Errorf("entry %d is %q, %q was acknowledged", i, e, want)
		}
		leaves[i] = merkle.LeafHash(e)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Append(ctx, []byte("after the restart")); err != nil {
		t.Fatal(err)
	}
	c, err := l.AwaitCheckpoint(ctx, n+1)
	if err != nil {
		t.Fatal(err)
	}
	p, err := l.InclusionProof(ctx, n-1, c.Size)
	if err != nil {
		t.Fatal(err)
	}
	if err := merkle.VerifyInclusion(p, n-1, c.Size, c.Root, leaves[n-1]); err != nil {
		t.Fatalf("last entry before the kill: %v", err)
	}
	// The entries read back make the tree the new checkpoint extends.
	cp, err := l.ConsistencyProof(ctx, n, c.Size)
	if err != nil {
		t.Fatal(err)
	}
	if err := merkle.VerifyConsistency(cp, n, c.Size, merkle.RangeRoot(merkle.CompactRange(leaves)), c.Root); err != nil {
		t.Fatalf("the %d entries read back are not the tree's first: %v", n, err)
	}
	if l2, err := tlog.OpenMySQL(ctx, tlog.MySQLOptions{DSN: dsn, Signer: s2, Verifier: v2}); err == nil {
		_ = l2.Close(ctx)
		t.Fatal("a log signed by another key was opened")
	}
}

func closeBoth(t *testing.T, ls ...tlog.Log) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, l := range ls {
		if err := l.Close(ctx); err != nil {
			t.Error(err)
		}
	}
}
