package sqlindex_test

import (
	"context"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/edgeseal/edgeseal/archive/sqlindex"
	"github.com/edgeseal/edgeseal/internal/mariadbtest"
	"github.com/edgeseal/edgeseal/store"
	"github.com/edgeseal/edgeseal/store/indextest"
)

// TestConformance runs store/indextest on the SQL index on a real
// MariaDB server: each name is its own database, reopened on a new pool.
func TestConformance(t *testing.T) {
	srv := mariadbtest.Start(t)
	var mu sync.Mutex
	dsns := map[string]string{}
	indextest.Run(t, func(t *testing.T, name string) store.IndexStore {
		mu.Lock()
		dsn, ok := dsns[name]
		if !ok {
			dsn = srv.Database(t)
			dsns[name] = dsn
		}
		mu.Unlock()
		x, err := sqlindex.OpenMySQL(t.Context(), dsn, sqlindex.Options{})
		if err != nil {
			t.Fatal(err)
		}
		return x
	})
}

func keysOf(t *testing.T, x store.IndexStore, r store.IndexRange) []string {
	t.Helper()
	var out []string
	if err := x.Scan(t.Context(), r, func(k, _ []byte) bool { out = append(out, string(k)); return true }); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestBinaryOrder: keys are ordered and told apart as bytes: trailing
// spaces and NUL bytes are significant, case is, and every byte value
// sorts as unsigned; a scan longer than one page returns every key once,
// in order, both ways.
func TestBinaryOrder(t *testing.T) {
	srv := mariadbtest.Start(t)
	x, err := sqlindex.OpenMySQL(t.Context(), srv.Database(t), sqlindex.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer x.Close()
	ctx := t.Context()
	want := []string{"A", "a", "a\x00", "a ", "a\x7f", "a\x80", "a\xff", "b"}
	var ops []store.IndexOp
	for i := len(want) - 1; i >= 0; i-- {
		ops = append(ops, store.IndexOp{Kind: store.IndexPut, Key: []byte(want[i]), Value: []byte{byte(i)}})
	}
	if err := x.Write(ctx, ops); err != nil {
		t.Fatal(err)
	}
	if got := keysOf(t, x, store.IndexRange{}); fmt.Sprintf("%q", got) != fmt.Sprintf("%q", want) {
		t.Fatalf("order %q, want %q", got, want)
	}
	for i, k := range want {
		if v, err := x.Get(ctx, []byte(k)); err != nil || len(v) != 1 || v[0] != byte(i) {
			t.Fatalf("Get(%q) = %v %v, want [%d]", k, v, err, i)
		}
	}
	// Many keys: pages.
	ops = ops[:0]
	for i := range 2000 {
		ops = append(ops, store.IndexOp{Kind: store.IndexPut, Key: binary.BigEndian.AppendUint32([]byte("p"), uint32(i)), Value: nil})
	}
	if err := x.Write(ctx, ops); err != nil {
		t.Fatal(err)
	}
	for _, rev := range []bool{false, true} {
		got := keysOf(t, x, store.IndexRange{Lo: []byte("p"), Hi: store.PrefixEnd([]byte("p")), Reverse: rev})
		if len(got) != 2000 {
			t.Fatalf("reverse %v: %d keys, want 2000", rev, len(got))
		}
		for i, k := range got {
			n := i
			if rev {
				n = 1999 - i
			}
			if binary.BigEndian.Uint32([]byte(k[1:])) != uint32(n) {
				t.Fatalf("reverse %v: key %d is %x", rev, i, k)
			}
		}
	}
	if v, err := x.Get(ctx, binary.BigEndian.AppendUint32([]byte("p"), 7)); err != nil || v == nil || len(v) != 0 {
		t.Fatalf("a nil Put value reads back as %v %v, want empty", v, err)
	}
}

// TestConcurrentCounters: two indexes on two pools over one table (two
// archive processes on one database) adding to the same counters at
// once lose no addition.
func TestConcurrentCounters(t *testing.T) {
	srv := mariadbtest.Start(t)
	dsn := srv.Database(t)
	var xs [2]*sqlindex.Index
	for i := range xs {
		x, err := sqlindex.OpenMySQL(t.Context(), dsn, sqlindex.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer x.Close()
		xs[i] = x
	}
	const writers, rounds = 4, 25
	var wg sync.WaitGroup
	errs := make(chan error, writers*rounds)
	for w := range writers {
		wg.Go(func() {
			x := xs[w%2]
			for r := range rounds {
				// Counters in opposite orders in alternate writers: the
				// write takes its locks in key order, no deadlock is left.
				ops := []store.IndexOp{{Kind: store.IndexAdd, Key: []byte("n1"), Delta: 1}, {Kind: store.IndexAdd, Key: []byte("n2"), Delta: 2},
					{Kind: store.IndexPut, Key: fmt.Appendf(nil, "w%d-%d", w, r), Value: []byte("x")}}
				if w%2 == 1 {
					ops[0], ops[1] = ops[1], ops[0]
				}
				if err := x.Write(context.Background(), ops); err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for k, want := range map[string]int64{"n1": writers * rounds, "n2": 2 * writers * rounds} {
		v, err := xs[1].Get(t.Context(), []byte(k))
		if err != nil || len(v) != 8 || int64(binary.BigEndian.Uint64(v)) != want {
			t.Fatalf("%s = %x %v, want %d", k, v, err, want)
		}
	}
	if got := keysOf(t, xs[0], store.IndexRange{Lo: []byte("w"), Hi: []byte("x")}); len(got) != writers*rounds {
		t.Fatalf("%d puts, want %d", len(got), writers*rounds)
	}
}

// TestOpenRefusals: a DSN of no server is an error that does not quote
// its password, an empty DSN and a table name that is not an identifier
// are refused; Close of an index on the caller's pool leaves the pool
// open, OpenMySQL's closes its own.
func TestOpenRefusals(t *testing.T) {
	srv := mariadbtest.Start(t)
	ctx := t.Context()
	bad := "root:s3cret@unix(" + srv.Dir + "/nosuch.sock)/x"
	if _, err := sqlindex.OpenMySQL(ctx, bad, sqlindex.Options{}); err == nil || strings.Contains(err.Error(), "s3cret") {
		t.Fatalf("a DSN of no server: %v", err)
	}
	if _, err := sqlindex.OpenMySQL(ctx, "", sqlindex.Options{}); err == nil {
		t.Fatal("an empty DSN opened")
	}
	if _, err := sqlindex.OpenMySQL(ctx, "root:s3cret@bogus(", sqlindex.Options{}); err == nil || strings.Contains(err.Error(), "s3cret") {
		t.Fatalf("a DSN that does not parse: %v", err)
	}
	dsn := srv.Database(t)
	db, err := sql.Open("mysql", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, name := range []string{"x`; DROP TABLE y; --", "a-b", strings.Repeat("t", 65)} {
		if _, err := sqlindex.Open(ctx, db, sqlindex.Options{Table: name}); err == nil {
			t.Errorf("table name %q accepted", name)
		}
	}
	x, err := sqlindex.Open(ctx, db, sqlindex.Options{Table: "other_index"})
	if err != nil {
		t.Fatal(err)
	}
	if err := x.Write(ctx, []store.IndexOp{{Kind: store.IndexPut, Key: []byte("k"), Value: []byte("v")}}); err != nil {
		t.Fatal(err)
	}
	if err := x.Close(); err != nil {
		t.Fatal(err)
	}
	if err := db.PingContext(ctx); err != nil {
		t.Fatalf("Close of an index on the caller's pool closed it: %v", err)
	}
	var n int
	if err := db.QueryRowContext(ctx, "SELECT COUNT(*) FROM other_index").Scan(&n); err != nil || n != 1 {
		t.Fatalf("rows in the named table: %d %v", n, err)
	}
	y, err := sqlindex.OpenMySQL(ctx, dsn, sqlindex.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := y.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := y.Get(ctx, []byte("k")); err == nil || errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Get after Close: %v; the pool was not closed", err)
	}
}

// TestConcurrentExpect: writers on two pools advancing one watermark by
// compare-and-swap (IndexExpect of the value read, then the next one)
// each win exactly once per value: every successful batch moved the
// watermark by one, and the batches that lost the race were refused
// whole with *store.IndexConflictError.
func TestConcurrentExpect(t *testing.T) {
	srv := mariadbtest.Start(t)
	dsn := srv.Database(t)
	var xs [2]*sqlindex.Index
	for i := range xs {
		x, err := sqlindex.OpenMySQL(t.Context(), dsn, sqlindex.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer x.Close()
		xs[i] = x
	}
	const writers, wins = 4, 20
	var wg sync.WaitGroup
	var mu sync.Mutex
	conflicts := 0
	errs := make(chan error, writers)
	for w := range writers {
		wg.Go(func() {
			x := xs[w%2]
			ctx := context.Background()
			for won := 0; won < wins; {
				var old []byte // nil: absent
				v, err := x.Get(ctx, []byte("w"))
				switch {
				case err == nil:
					old = v
				case !errors.Is(err, store.ErrNotFound):
					errs <- err
					return
				}
				var n uint64
				if old != nil {
					n = binary.BigEndian.Uint64(old)
				}
				err = x.Write(ctx, []store.IndexOp{{Kind: store.IndexExpect, Key: []byte("w"), Value: old},
					{Kind: store.IndexPut, Key: []byte("w"), Value: binary.BigEndian.AppendUint64(nil, n+1)},
					{Kind: store.IndexAdd, Key: []byte("n"), Delta: 1}})
				if _, ok := errors.AsType[*store.IndexConflictError](err); ok {
					mu.Lock()
					conflicts++
					mu.Unlock()
					continue
				}
				if err != nil {
					errs <- err
					return
				}
				won++
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	w, err := xs[0].Get(t.Context(), []byte("w"))
	if err != nil {
		t.Fatal(err)
	}
	n, err := xs[1].Get(t.Context(), []byte("n"))
	if err != nil {
		t.Fatal(err)
	}
	if binary.BigEndian.Uint64(w) != writers*wins || binary.BigEndian.Uint64(n) != writers*wins {
		t.Fatalf("watermark %d, batches applied %d, want %d each", binary.BigEndian.Uint64(w), binary.BigEndian.Uint64(n), writers*wins)
	}
	t.Logf("%d batches lost the race", conflicts)
}
