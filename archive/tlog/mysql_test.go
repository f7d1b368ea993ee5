package tlog_test

import (
	"context"
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

func closeBoth(t *testing.T, ls ...tlog.Log) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, l := range ls {
		if err := l.Close(ctx); err != nil {
			t.Error(err)
		}
	}
}
