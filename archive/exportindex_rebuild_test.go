package archive_test

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/edgeseal/edgeseal/archive"
	"github.com/edgeseal/edgeseal/bundle/bundletest"
)

// exportKeys are the (bundle, export, status) of each entry, sorted.
func exportKeys(es []*archive.ExportEntry) []string {
	out := make([]string, 0, len(es))
	for _, e := range es {
		out = append(out, e.Bundle+" "+e.Export+" "+e.Status)
	}
	slices.Sort(out)
	return out
}

// TestExportIndexRebuiltWhenDamaged: an export index whose MANIFEST names
// a table that is gone (as Badger left it after a failed fsync) does not
// stop the archive: Open sets it aside (ExportIndexRebuilt names where,
// the files are kept) and rebuilds it from the archive log and the access
// log, with the same export entries and access entries.
func TestExportIndexRebuiltWhenDamaged(t *testing.T) {
	e := newEnv(t)
	if e.sqlIndex() {
		t.Skip("damages the Badger index in Dir/search; the export index is on MariaDB")
	}
	ctx := t.Context()
	indexedChain(t, e)
	if _, err := e.a.RecordAccess(ctx, archive.AccessEntry{User: "ann", Via: "local", Roles: []string{"auditor"}, Action: "export.get", Outcome: "ok",
		Target: archive.AccessTarget{Export: "exp-000001"}, Remote: "127.0.0.1:1"}); err != nil {
		t.Fatal(err)
	}
	before := exportKeys(search(t, e.a, archive.ExportQuery{Limit: 1000}))
	if p, err := e.a.SearchAccess(ctx, archive.AccessQuery{User: "ann"}); err != nil || len(p.Items) != 1 {
		t.Fatalf("access entries before: %d %v", len(p.Items), err)
	}
	if e.a.ExportIndexRebuilt() != "" {
		t.Fatal("a whole index reported rebuilt")
	}
	e.a.Close() // flushes the index's memtable into a table
	e.a = nil
	tables, _ := filepath.Glob(filepath.Join(e.dir, "search", "*.sst"))
	if len(tables) == 0 {
		t.Fatal("no table in the export index")
	}
	for _, f := range tables {
		if err := os.Remove(f); err != nil {
			t.Fatal(err)
		}
	}
	e.open()
	aside := e.a.ExportIndexRebuilt()
	if filepath.Dir(aside) != e.dir || !strings.HasPrefix(filepath.Base(aside), "search.damaged-") {
		t.Fatalf("set aside as %q", aside)
	}
	if _, err := os.Stat(filepath.Join(aside, "MANIFEST")); err != nil {
		t.Fatalf("the damaged index is not kept: %v", err)
	}
	waitIndexed(t, e.a)
	if after := exportKeys(search(t, e.a, archive.ExportQuery{Limit: 1000})); !slices.Equal(after, before) {
		t.Fatalf("rebuilt index: %d entries, want %d\n%v\n%v", len(after), len(before), after, before)
	}
	if p, err := e.a.SearchAccess(ctx, archive.AccessQuery{User: "ann"}); err != nil || len(p.Items) != 1 {
		t.Fatalf("access entries after the rebuild: %d %v", len(p.Items), err)
	}
	e.reopen()
	if e.a.ExportIndexRebuilt() != "" {
		t.Fatal("the rebuilt index was set aside again")
	}
}

// TestExportIndexRebuildReadsSkeleton: an export index rebuilt after a
// purge still finds the purged bundle's exports: the indexer reads the
// records from its skeleton.
func TestExportIndexRebuildReadsSkeleton(t *testing.T) {
	ctx := t.Context()
	e, clk := retentionEnv(t, map[string]time.Duration{"7y": time.Hour, "10y": 2 * time.Hour}, "10y")
	c := newChain(t, 2, bundletest.Options{Records: 4})
	e.approve(c)
	for _, b := range c.Bundles {
		e.accept(c, b)
	}
	clk.add(90 * time.Minute)
	res, err := e.a.Purge(ctx, operatorKey, archive.PurgeOptions{By: "alice", Reason: "retention over"})
	if err != nil || len(res.Purged) != 2 {
		t.Fatalf("purge: %+v %v", res, err)
	}
	waitIndexed(t, e.a)
	before := exportKeys(search(t, e.a, archive.ExportQuery{Limit: 1000}))
	for _, p := range res.Purged {
		if !slices.ContainsFunc(before, func(k string) bool { return strings.HasPrefix(k, p.Bundle+" ") }) {
			t.Fatalf("no entry of %s before the rebuild: %v", p.Bundle, before)
		}
	}
	if err := e.a.Close(); err != nil {
		t.Fatal(err)
	}
	e.a = nil
	if err := os.RemoveAll(filepath.Join(e.dir, "search")); err != nil {
		t.Fatal(err)
	}
	e.a = reopenRetention(t, e, clk)
	waitIndexed(t, e.a)
	if after := exportKeys(search(t, e.a, archive.ExportQuery{Limit: 1000})); !slices.Equal(after, before) {
		t.Fatalf("rebuilt after a purge: %d entries, want %d\n%v\n%v", len(after), len(before), after, before)
	}
}
