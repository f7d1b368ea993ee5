package archive_test

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/edgeseal/edgeseal/archive"
	"github.com/edgeseal/edgeseal/bundle/bundletest"
	"github.com/edgeseal/edgeseal/store"
)

// TestLogEngineDefault: a new data directory gets the posix engine; one
// whose log is a journal (Dir/log) stays on the journal engine when the
// engine is not set, and refuses the posix engine without creating an
// empty POSIX log beside it; an archive whose log is gone gets no new one.
func TestLogEngineDefault(t *testing.T) {
	e := engineEnv(t, "")
	if got, err := archive.ResolveLogEngine(e.dir, "", nil); err != nil || got != archive.LogEnginePOSIX {
		t.Fatalf("new data dir: %q %v, want posix", got, err)
	}
	e.open()
	c := newChain(t, 1, bundletest.Options{})
	e.approve(c)
	e.accept(c, c.Bundles[0])
	e.a.Close()
	e.a = nil
	if _, err := os.Stat(filepath.Join(e.dir, archive.POSIXLogDir, "checkpoint")); err != nil {
		t.Fatalf("a new archive is not on posix: %v", err)
	}
	if _, err := os.Stat(filepath.Join(e.dir, archive.JournalLogDir)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a new archive made a journal log: %v", err)
	}

	j := engineEnv(t, archive.LogEngineJournal)
	j.open()
	j.a.Close()
	j.a = nil
	if got, err := archive.ResolveLogEngine(j.dir, "", nil); err != nil || got != archive.LogEngineJournal {
		t.Fatalf("a journal archive, engine unset: %q %v, want journal", got, err)
	}
	j.engine = archive.LogEnginePOSIX
	_, err := archive.Open(t.Context(), archive.Options{Dir: j.dir, Key: j.key, LogEngine: archive.LogEnginePOSIX})
	if le, ok := errors.AsType[*archive.LogEngineError](err); !ok || le.Found != archive.LogEngineJournal {
		t.Fatalf("posix beside a journal log: %v, want *LogEngineError", err)
	}
	if _, err := os.Stat(filepath.Join(j.dir, archive.POSIXLogDir)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a refused posix open created %s: %v", archive.POSIXLogDir, err)
	}

	// The log gone (moved away), its keys there: no engine starts a new
	// one.
	if err := os.Rename(filepath.Join(e.dir, archive.POSIXLogDir), filepath.Join(t.TempDir(), "moved")); err != nil {
		t.Fatal(err)
	}
	for _, engine := range []string{"", archive.LogEnginePOSIX, archive.LogEngineJournal} {
		if _, err := archive.Open(t.Context(), archive.Options{Dir: e.dir, Key: e.key, LogEngine: engine}); !errors.Is(err, archive.ErrNoLog) {
			t.Fatalf("engine %q on an archive without its log: %v, want ErrNoLog", engine, err)
		}
	}
	for _, d := range []string{archive.POSIXLogDir, archive.JournalLogDir} {
		if _, err := os.Stat(filepath.Join(e.dir, d)); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("an archive without its log got a new %s: %v", d, err)
		}
	}
}

// TestMigrateLog migrates an archive's journal log to posix: refused
// while the archive is open; what an interrupted migration left (a
// partial tlog.migrating, a tlog beside the journal) is redone; the
// journal is set aside, not removed; a second run does nothing; the
// archive then opens on the default engine (posix) with the same tree:
// old bundles deduplicated with their receipts, new ones appended after
// them with a witness proof from a journal checkpoint; the journal
// engine is refused on the migrated archive.
func TestMigrateLog(t *testing.T) {
	ctx := t.Context()
	e := engineEnv(t, archive.LogEngineJournal)
	e.open()
	t.Cleanup(func() {
		if e.a != nil {
			e.a.Close()
		}
	})
	c := newChain(t, 5, bundletest.Options{})
	e.approve(c)
	var replies [][]byte
	for _, b := range c.Bundles[:3] {
		replies = append(replies, e.accept(c, b))
	}
	size := e.a.LogSize()
	opts := archive.Options{Dir: e.dir, Key: e.key}
	if _, err := archive.MigrateLog(ctx, opts); !errors.Is(err, store.ErrLocked) {
		t.Fatalf("migration of an open archive: %v, want store.ErrLocked", err)
	}
	if err := e.a.Close(); err != nil {
		t.Fatal(err)
	}
	e.a = nil

	// An interrupted migration: a partial log in the staging folder, and
	// one renamed tlog before the journal was set aside.
	for _, d := range []string{"tlog.migrating", archive.POSIXLogDir} {
		if err := os.MkdirAll(filepath.Join(e.dir, d, "tile"), 0o750); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := archive.MigrateLog(ctx, archive.Options{Dir: e.dir, Key: e.key, LogEngine: archive.LogEngineJournal}); err == nil {
		t.Fatal("migration with the journal engine configured went ahead")
	}
	res, err := archive.MigrateLog(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Migrated || res.Size != size || res.Aside != filepath.Join(e.dir, archive.MigratedLogDir) {
		t.Fatalf("migration: %+v, want %d entries, the journal in %s", res, size, archive.MigratedLogDir)
	}
	for d, want := range map[string]bool{archive.JournalLogDir: false, "tlog.migrating": false, archive.MigratedLogDir: true, filepath.Join(archive.POSIXLogDir, "checkpoint"): true} {
		if _, err := os.Lstat(filepath.Join(e.dir, d)); (err == nil) != want {
			t.Errorf("%s after the migration: %v, want present %v", d, err, want)
		}
	}
	if res, err := archive.MigrateLog(ctx, opts); err != nil || res.Migrated {
		t.Fatalf("second migration: %+v %v, want nothing done", res, err)
	}
	if _, err := archive.ResolveLogEngine(e.dir, archive.LogEngineJournal, nil); err == nil {
		t.Fatal("journal engine on a migrated archive resolved")
	}

	e.engine = ""
	e.open()
	if got := e.a.LogSize(); got != size {
		t.Fatalf("log of %d entries after the migration, want %d", got, size)
	}
	old := e.checkReceipt(replies[2], raw(t, c.Bundles[2]), c.DeviceName())
	for i, b := range c.Bundles[:3] {
		got, err := e.a.Receive(ctx, c.Opts.Site, c.Opts.Device, raw(t, b))
		if err != nil {
			t.Fatalf("bundle %d again after the migration: %v", i, err)
		}
		e.repeated(replies[i], got, raw(t, b), c.DeviceName())
	}
	rc := e.checkReceipt(e.accept(c, c.Bundles[3]), raw(t, c.Bundles[3]), c.DeviceName())
	if rc.LogIndex != size {
		t.Fatalf("first entry after the migration at %d, want %d", rc.LogIndex, size)
	}
	checkWitness(t, old, rc)
	if res, err := e.a.Check(ctx); err != nil || !res.OK() {
		t.Fatalf("check after the migration: %+v %v", res, err)
	}
}

// TestMigrateEmptyLog: a journal archive that never logged anything
// migrates to an empty POSIX log, which then takes the first bundle at
// index 0.
func TestMigrateEmptyLog(t *testing.T) {
	e := engineEnv(t, archive.LogEngineJournal)
	e.open()
	e.a.Close()
	e.a = nil
	res, err := archive.MigrateLog(t.Context(), archive.Options{Dir: e.dir, Key: e.key})
	if err != nil || !res.Migrated || res.Size != 0 {
		t.Fatalf("migration of an empty log: %+v %v", res, err)
	}
	e.engine = ""
	e.open()
	defer func() { e.a.Close(); e.a = nil }()
	c := newChain(t, 1, bundletest.Options{})
	e.approve(c)
	if rc := e.checkReceipt(e.accept(c, c.Bundles[0]), raw(t, c.Bundles[0]), c.DeviceName()); rc.LogIndex != 0 {
		t.Fatalf("first entry at %d", rc.LogIndex)
	}
}
