package sqlframes_test

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"testing"
	"time"

	"github.com/edgeseal/edgeseal/archive/sqlframes"
	"github.com/edgeseal/edgeseal/internal/mariadbtest"
	"github.com/edgeseal/edgeseal/sync"
	"github.com/edgeseal/edgeseal/sync/frametest"
)

// openReplicas opens n Stores, each on a pool of its own, on one fresh
// database of srv.
func openReplicas(t *testing.T, srv *mariadbtest.Server, n int, limits sync.AssemblerLimits, now func() time.Time) []*sqlframes.Store {
	t.Helper()
	dsn := srv.Database(t)
	out := make([]*sqlframes.Store, n)
	for i := range out {
		s, err := sqlframes.OpenMySQL(context.Background(), dsn, limits)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Close() })
		sqlframes.SetClock(s, now)
		out[i] = s
	}
	return out
}

// TestMariaDBConformance runs the FrameStore conformance suite on
// MariaDB, each "replica" a Store with a pool of its own on one database.
func TestMariaDBConformance(t *testing.T) {
	srv := mariadbtest.Start(t)
	frametest.Run(t, func(t *testing.T, n int, limits sync.AssemblerLimits, now func() time.Time) []sync.FrameStore {
		var out []sync.FrameStore
		for _, s := range openReplicas(t, srv, n, limits, now) {
			out = append(out, s)
		}
		return out
	})
}

// TestMariaDBSweep: the sweep drops the partials idle past the TTL of a
// source that sends nothing more, with their chunks and the source's
// row, and leaves the fresh ones.
func TestMariaDBSweep(t *testing.T) {
	srv := mariadbtest.Start(t)
	now := time.Unix(1_800_000_000, 0)
	clock := func() time.Time { return now }
	dsn := srv.Database(t)
	s, err := sqlframes.OpenMySQL(t.Context(), dsn, sync.AssemblerLimits{TTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	sqlframes.SetClock(s, clock)
	b1, b2 := testFrames("sweep-1", 3000), testFrames("sweep-2", 3000)
	for _, f := range b1[:2] {
		if _, err := s.Add(t.Context(), "s/old", f); err != nil {
			t.Fatal(err)
		}
	}
	now = now.Add(45 * time.Second)
	if _, err := s.Add(t.Context(), "s/new", b2[0]); err != nil {
		t.Fatal(err)
	}
	now = now.Add(30 * time.Second)
	n, err := s.Sweep(t.Context())
	if err != nil || n != 1 {
		t.Fatalf("sweep dropped %d partials (%v), want 1", n, err)
	}
	db, err := sql.Open("mysql", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, c := range []struct {
		q    string
		want int
	}{
		{`SELECT COUNT(*) FROM edgeseal_frame WHERE source = 's/old'`, 0},
		{`SELECT COUNT(*) FROM edgeseal_frame_partial WHERE source = 's/old'`, 0},
		{`SELECT COUNT(*) FROM edgeseal_frame_source WHERE source = 's/old'`, 0},
		{`SELECT COUNT(*) FROM edgeseal_frame WHERE source = 's/new'`, 1},
		{`SELECT partials FROM edgeseal_frame_source WHERE source = 's/new'`, 1},
	} {
		var got int
		if err := db.QueryRow(c.q).Scan(&got); err != nil || got != c.want {
			t.Fatalf("%s: %d (%v), want %d", c.q, got, err, c.want)
		}
	}
	if st := s.Stats(); st.Expired != 1 {
		t.Fatalf("stats %+v, want 1 expired", st)
	}
}

// TestMariaDBSourceBytes: a source's chunk bytes are bounded: its older
// partials are dropped to make room, and a frame that does not fit even
// alone is refused with *sync.LimitError; nothing is left behind.
func TestMariaDBSourceBytes(t *testing.T) {
	srv := mariadbtest.Start(t)
	ss := openReplicas(t, srv, 1, sync.AssemblerLimits{MaxBundle: 4000, MaxSourceBytes: 4000}, time.Now)
	s := ss[0]
	a, b := testFrames("bytes-a", 4000), testFrames("bytes-b", 4000)
	for _, f := range a[:len(a)-1] {
		if _, err := s.Add(t.Context(), "s/d", f); err != nil {
			t.Fatal(err)
		}
	}
	var c *sync.Complete
	for _, f := range b {
		var err error
		if c, err = s.Add(t.Context(), "s/d", f); err != nil {
			t.Fatal(err)
		}
	}
	if c == nil {
		t.Fatal("b did not complete")
	}
	if st := s.Stats(); st.Evicted != 1 || st.Completed != 1 {
		t.Fatalf("stats %+v, want a evicted for b, b completed", st)
	}
	if c, err := s.Add(t.Context(), "s/d", a[len(a)-1]); c != nil || err != nil {
		t.Fatalf("a's last frame after a was dropped: %v, %v", c, err)
	}
}

func testFrames(seed string, n int) [][]byte {
	data := make([]byte, n)
	for i := range data {
		data[i] = seed[i%len(seed)] + byte(i/7)
	}
	return sync.EncodeChunks("id-"+seed, sha256Sum(data), data, 1024)
}

func sha256Sum(b []byte) [32]byte { return sha256.Sum256(b) }
