package archive_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/edgeseal/edgeseal/archive"
	"github.com/edgeseal/edgeseal/archive/sqlindex"
	"github.com/edgeseal/edgeseal/internal/mariadbtest"
)

// TestExportIndexOnSQL: with the export index on MariaDB
// (Options.ExportIndex, archive/sqlindex) the accepted bundles are
// indexed there and nothing is kept under Dir/search (the access log's
// search keys are in Dir/access-search, beside that log); searches, the
// device summary, the per-day counts and the access log's entries are
// the same after a restart (nothing indexed twice), a bundle accepted
// after the restart is added to them, and an archive opened on an empty
// database (an index engine switched) fills it from the archive log.
func TestExportIndexOnSQL(t *testing.T) {
	srv := mariadbtest.Start(t)
	dsn := srv.Database(t)
	e := &env{t: t, dir: t.TempDir(), key: testKey, indexDSN: dsn}
	t.Cleanup(func() {
		if e.index != nil {
			e.index.Close()
		}
	})
	e.open()
	t.Cleanup(func() {
		if e.a != nil {
			e.a.Close()
		}
	})
	ctx := t.Context()
	c := indexedChain(t, e)
	if _, err := e.a.RecordAccess(ctx, archive.AccessEntry{User: "ann", Via: "local", Roles: []string{"auditor"}, Action: "export.get", Outcome: "ok",
		Target: archive.AccessTarget{Export: "exp-000001"}, Remote: "127.0.0.1:1"}); err != nil {
		t.Fatal(err)
	}
	all := search(t, e.a, archive.ExportQuery{Limit: 3})
	before := exportKeys(all)
	var refused int
	for _, en := range all {
		if en.Status == archive.StatusRefused {
			refused++
		}
	}
	if refused != 1 || len(all) < 11 || len(slices.Compact(slices.Clone(before))) != len(before) {
		t.Fatalf("%d entries, %d refused: %v", len(all), refused, before)
	}
	if _, err := os.Stat(filepath.Join(e.dir, "search")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a Badger index beside the SQL one: %v", err)
	}
	db, err := sql.Open("mysql", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var rows int
	if err := db.QueryRowContext(ctx, "SELECT COUNT(*) FROM "+sqlindex.DefaultTable).Scan(&rows); err != nil || rows < 3*len(all) {
		t.Fatalf("%d rows in the database's index for %d entries: %v", rows, len(all), err)
	}
	summary := func(want uint64) {
		t.Helper()
		sums, err := e.a.DeviceSummaries(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if s := sums[c.DeviceName()]; s.Bundles != want {
			t.Fatalf("device summary %+v, want %d bundles", s, want)
		}
	}
	counted := func() uint64 {
		t.Helper()
		days, _, err := e.a.ExportStats(ctx, "status", time.Time{}, time.Now().AddDate(1, 0, 0))
		if err != nil {
			t.Fatal(err)
		}
		var n uint64
		for _, d := range days {
			n += d.Counts[archive.StatusAccepted] + d.Counts[archive.StatusRefused]
		}
		return n
	}
	access := func(name string) {
		t.Helper()
		if p, err := e.a.SearchAccess(ctx, archive.AccessQuery{User: "ann"}); err != nil || len(p.Items) != 1 {
			t.Fatalf("%s: access entries of ann: %d %v", name, len(p.Items), err)
		}
	}
	summary(3)
	if n := counted(); n != uint64(len(all)) {
		t.Fatalf("counted %d entries, listed %d", n, len(all))
	}
	access("before the restart")

	e.reopen()
	waitIndexed(t, e.a)
	if got := exportKeys(search(t, e.a, archive.ExportQuery{Limit: 1000})); !slices.Equal(got, before) {
		t.Fatalf("after the restart: %d entries, want %d", len(got), len(before))
	}
	summary(3)
	if n := counted(); n != uint64(len(all)) {
		t.Fatalf("after the restart: counted %d entries, want %d", n, len(all))
	}
	access("after the restart")
	b, err := c.Next(ctx, 4)
	if err != nil {
		t.Fatal(err)
	}
	e.accept(c, b)
	waitIndexed(t, e.a)
	after := exportKeys(search(t, e.a, archive.ExportQuery{Limit: 1000}))
	if len(after) <= len(before) || len(slices.Compact(slices.Clone(after))) != len(after) {
		t.Fatalf("a bundle after the restart: %d entries, %d before", len(after), len(before))
	}
	for _, k := range before {
		if _, ok := slices.BinarySearch(after, k); !ok {
			t.Fatalf("entry %s lost after a bundle", k)
		}
	}
	if n := counted(); n != uint64(len(after)) {
		t.Fatalf("counted %d entries, listed %d", n, len(after))
	}
	summary(4)

	// Another (empty) database: the index is filled from the logs.
	if err := e.a.Close(); err != nil {
		t.Fatal(err)
	}
	e.a = nil
	e.indexDSN = srv.Database(t)
	e.open()
	waitIndexed(t, e.a)
	if got := exportKeys(search(t, e.a, archive.ExportQuery{Limit: 1000})); !slices.Equal(got, after) {
		t.Fatalf("an empty index filled: %d entries, want %d", len(got), len(after))
	}
	summary(4)
	if n := counted(); n != uint64(len(after)) {
		t.Fatalf("an empty index filled: counted %d entries, listed %d", n, len(after))
	}
	access("an empty index filled")
}

// TestExportIndexSharedMark: the indexer of another archive process on
// the same index (MariaDB), whose view of the watermark is stale, indexes
// nothing twice: its batch for an entry already indexed is refused
// (ErrIndexMarkMoved), it takes up the index's watermark, and the
// searches, the device summary and the per-day counts are as before.
// Each engine runs it (Badger: the same condition in one process).
func TestExportIndexSharedMark(t *testing.T) {
	old := archive.SetIndexTick(time.Hour) // passes only on a commit: the test's call is the only other
	t.Cleanup(func() { archive.SetIndexTick(old) })
	for _, engine := range []string{"badger", "mysql"} {
		t.Run(engine, func(t *testing.T) {
			e := &env{t: t, dir: t.TempDir(), key: testKey}
			if engine == "mysql" {
				e.indexDSN = mariadbtest.Start(t).Database(t)
			}
			t.Cleanup(func() {
				if e.index != nil {
					e.index.Close()
				}
			})
			e.open()
			t.Cleanup(func() {
				if e.a != nil {
					e.a.Close()
				}
			})
			c := indexedChain(t, e)
			before := exportKeys(search(t, e.a, archive.ExportQuery{Limit: 1000}))
			sums, err := e.a.DeviceSummaries(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			size := e.a.IndexedUpTo()
			for li := range size {
				if err := archive.IndexAsStale(e.a, li, [2]uint64{li, 0}); !errors.Is(err, archive.ErrIndexMarkMoved) {
					t.Fatalf("log entry %d indexed again from a stale watermark: %v", li, err)
				}
				if got := e.a.IndexedUpTo(); got != size {
					t.Fatalf("after the refused batch the watermark is %d, want the index's %d", got, size)
				}
			}
			if got := exportKeys(search(t, e.a, archive.ExportQuery{Limit: 1000})); !slices.Equal(got, before) {
				t.Fatalf("entries %d, want %d", len(got), len(before))
			}
			again, err := e.a.DeviceSummaries(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			if again[c.DeviceName()] != sums[c.DeviceName()] {
				t.Fatalf("device summary %+v, was %+v", again[c.DeviceName()], sums[c.DeviceName()])
			}
			days, _, err := e.a.ExportStats(t.Context(), "status", time.Time{}, time.Now().AddDate(1, 0, 0))
			if err != nil {
				t.Fatal(err)
			}
			var n uint64
			for _, d := range days {
				n += d.Counts[archive.StatusAccepted] + d.Counts[archive.StatusRefused]
			}
			if n != uint64(len(before)) {
				t.Fatalf("counted %d entries, listed %d", n, len(before))
			}
			// The indexer goes on: a new bundle is indexed once.
			b, err := c.Next(t.Context(), 4)
			if err != nil {
				t.Fatal(err)
			}
			e.accept(c, b)
			waitIndexed(t, e.a)
			if got := exportKeys(search(t, e.a, archive.ExportQuery{Limit: 1000})); len(got) <= len(before) || len(slices.Compact(slices.Clone(got))) != len(got) {
				t.Fatalf("after a bundle: %d entries, %d before", len(got), len(before))
			}
		})
	}
}

// TestExportIndexTwoArchives: two archives (data directories of their
// own) on one MariaDB log and one MariaDB export index, as two
// processes: the second follows the index the first writes (its
// watermark taken from the index, not kept in memory) without indexing
// an entry again, and both find the same entries, device summary and
// counts. Each one's access log (and its search keys) is its own: each
// finds the reads it recorded, not the other's.
func TestExportIndexTwoArchives(t *testing.T) {
	old := archive.SetIndexTick(50 * time.Millisecond)
	t.Cleanup(func() { archive.SetIndexTick(old) })
	srv := mariadbtest.Start(t)
	logDSN, indexDSN := srv.Database(t), srv.Database(t)
	var es [2]*env
	for i := range es {
		e := &env{t: t, dir: t.TempDir(), key: testKey, engine: archive.LogEngineMySQL, dsn: logDSN, indexDSN: indexDSN}
		t.Cleanup(func() {
			if e.index != nil {
				e.index.Close()
			}
		})
		e.open()
		t.Cleanup(func() {
			if e.a != nil {
				e.a.Close()
			}
		})
		es[i] = e
	}
	c := indexedChain(t, es[0])
	want := exportKeys(search(t, es[0].a, archive.ExportQuery{Limit: 1000}))
	size := es[0].a.IndexedUpTo()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	if err := es[1].a.WaitIndexed(ctx, size); err != nil {
		t.Fatalf("the second archive's view of the index: up to %d, want %d: %v", es[1].a.IndexedUpTo(), size, err)
	}
	for i, e := range es {
		if got := exportKeys(search(t, e.a, archive.ExportQuery{Limit: 1000})); !slices.Equal(got, want) {
			t.Fatalf("archive %d finds %d entries, want %d", i, len(got), len(want))
		}
		sums, err := e.a.DeviceSummaries(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if s := sums[c.DeviceName()]; s.Bundles != 3 {
			t.Fatalf("archive %d: device summary %+v, want 3 bundles", i, s)
		}
		days, _, err := e.a.ExportStats(t.Context(), "status", time.Time{}, time.Now().AddDate(1, 0, 0))
		if err != nil {
			t.Fatal(err)
		}
		var n uint64
		for _, d := range days {
			n += d.Counts[archive.StatusAccepted] + d.Counts[archive.StatusRefused]
		}
		if n != uint64(len(want)) {
			t.Fatalf("archive %d: counted %d entries, want %d", i, n, len(want))
		}
		for j := range 2 + i {
			if _, err := e.a.RecordAccess(t.Context(), archive.AccessEntry{User: fmt.Sprintf("user%d", i), Via: "local", Roles: []string{"auditor"},
				Action: "export.get", Outcome: "ok", Target: archive.AccessTarget{Export: fmt.Sprintf("exp-%d", j)}, Remote: "127.0.0.1:1"}); err != nil {
				t.Fatal(err)
			}
		}
	}
	for i, e := range es {
		for u := range es {
			p, err := e.a.SearchAccess(t.Context(), archive.AccessQuery{User: fmt.Sprintf("user%d", u)})
			want := 0
			if u == i {
				want = 2 + i
			}
			if err != nil || len(p.Items) != want {
				t.Fatalf("archive %d: %d reads of user%d, want %d: %v", i, len(p.Items), u, want, err)
			}
		}
	}
}
