package archive_test

import (
	"context"
	"crypto/ed25519"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/edgeseal/edgeseal/archive"
	"github.com/edgeseal/edgeseal/archive/tlog"
	"github.com/edgeseal/edgeseal/bundle/archivesig"
	"github.com/edgeseal/edgeseal/bundle/bundletest"
	"github.com/edgeseal/edgeseal/internal/mariadbtest"
)

// TestLogEngines runs admission, deduplication, receipts (inclusion and
// witness proofs), restart, the loss of the log's key records, key
// rotation, archive check and the tlog-tiles handler on each engine of
// the archive log (MySQL on a MariaDB server: internal/mariadbtest).
func TestLogEngines(t *testing.T) {
	for _, engine := range []string{archive.LogEngineJournal, archive.LogEnginePOSIX, archive.LogEngineMySQL} {
		t.Run(engine, func(t *testing.T) {
			e := engineEnv(t, engine)
			e.open()
			t.Cleanup(func() {
				if e.a != nil {
					e.a.Close()
				}
			})
			testLogEngine(t, e)
		})
	}
}

func testLogEngine(t *testing.T, e *env) {
	ctx := t.Context()
	c := newChain(t, 6, bundletest.Options{})
	e.approve(c)

	// Admission and receipts: the second carries the witness proof from
	// the first's checkpoint.
	r0 := e.accept(c, c.Bundles[0])
	r1 := e.accept(c, c.Bundles[1])
	rc0, rc1 := e.checkReceipt(r0, raw(t, c.Bundles[0]), c.DeviceName()), e.checkReceipt(r1, raw(t, c.Bundles[1]), c.DeviceName())
	if rc0.LogIndex != 0 || rc1.LogIndex != 1 {
		t.Fatalf("log indexes %d, %d", rc0.LogIndex, rc1.LogIndex)
	}
	checkWitness(t, rc0, rc1)

	// Deduplication: the stored receipt (it has a witness proof),
	// nothing appended.
	dedup := func(want []byte, b int) {
		t.Helper()
		n := e.a.LogSize()
		got, err := e.a.Receive(ctx, c.Opts.Site, c.Opts.Device, raw(t, c.Bundles[b]))
		if err != nil || string(got) != string(want) {
			t.Fatalf("repeat of bundle %d: %v (same receipt: %v)", b, err, string(got) == string(want))
		}
		if e.a.LogSize() != n {
			t.Fatalf("repeat of bundle %d appended: log %d -> %d", b, n, e.a.LogSize())
		}
	}
	// The first receipt (no witness proof) again, once the device was
	// given a larger checkpoint: a fresh receipt against the current
	// checkpoint, proven from the device's newest receipt's.
	fresh0 := func(newest []byte, b int) {
		t.Helper()
		n := e.a.LogSize()
		again, err := e.a.Receive(ctx, c.Opts.Site, c.Opts.Device, raw(t, c.Bundles[0]))
		if err != nil {
			t.Fatal(err)
		}
		e.freshFor(r0, again, raw(t, c.Bundles[0]), c.DeviceName(), e.checkReceipt(newest, raw(t, c.Bundles[b]), c.DeviceName()))
		if e.a.LogSize() != n {
			t.Fatalf("repeat of bundle 0 appended: log %d -> %d", n, e.a.LogSize())
		}
	}
	fresh0(r1, 1)

	// Restart: still deduplicated, the chain goes on.
	e.reopen()
	dedup(r1, 1)
	r2 := e.accept(c, c.Bundles[2])
	checkWitness(t, rc1, e.checkReceipt(r2, raw(t, c.Bundles[2]), c.DeviceName()))

	// The key records lost (a crash after the log entry, before its key
	// record, for every entry): Open rebuilds them from the log.
	if err := e.a.Close(); err != nil {
		t.Fatal(err)
	}
	e.a = nil
	if err := os.RemoveAll(filepath.Join(e.dir, "logkeys")); err != nil {
		t.Fatal(err)
	}
	e.open()
	fresh0(r2, 2)
	dedup(r2, 2)

	// Key rotation: the log signs with the new key from then on; the
	// checkpoints of the old one still open.
	next := seedKey("engine rotation " + e.engine)
	nextID := archive.KeyID(next.Public().(ed25519.PublicKey))
	if _, err := e.a.RotateKey(ctx, next, time.Hour); err != nil {
		t.Fatal(err)
	}
	if cp, err := e.a.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	} else if _, err := verifyNote(e.a, string(cp)); err != nil {
		t.Fatalf("checkpoint right after the rotation, under the new key: %v", err)
	}
	r3 := e.accept(c, c.Bundles[3])
	if env, _, err := archivesig.ParseReceipt(r3); err != nil || env.Signatures[0].KeyID != nextID {
		t.Fatalf("receipt after rotation: %v", err)
	}
	dedup(r1, 1)
	fresh0(r3, 3) // signed by the new key, the note too (checkReceipt)
	if err := e.a.Close(); err != nil {
		t.Fatal(err)
	}
	e.a, e.key = nil, next
	e.open()
	dedup(r3, 3)
	r4 := e.accept(c, c.Bundles[4])
	if rc := e.checkReceipt(r4, raw(t, c.Bundles[4]), c.DeviceName()); rc.LogIndex != 5 { // 4 bundles and the key entry
		t.Fatalf("log index after rotation and restart: %d", rc.LogIndex)
	}

	// Check: log, index and objects agree.
	res, err := e.a.Check(ctx)
	if err != nil || !res.OK() || res.Checked != 5 {
		t.Fatalf("check: %+v %v", res, err)
	}

	// The tlog-tiles handler serves the checkpoint and the entries.
	srv := httptest.NewServer(tlog.Handler(e.a.LogTiles(), nil))
	defer srv.Close()
	cpRaw := get(t, srv.URL+"/checkpoint")
	v, err := note.NewVerifier(e.a.VerifierKey())
	if err != nil {
		t.Fatal(err)
	}
	cp, err := tlog.OpenCheckpoint(cpRaw, v)
	if err != nil || cp.Size != e.a.LogSize() {
		t.Fatalf("served checkpoint %+v (log %d): %v", cp, e.a.LogSize(), err)
	}
	bundle := get(t, srv.URL+"/tile/entries/000.p/6")
	rec, err := e.a.LogRecord(5)
	if err != nil || len(bundle) < len(rec) || string(bundle[len(bundle)-len(rec):]) != string(rec) {
		t.Fatalf("entry bundle does not end with log record 5: %v", err)
	}
	if _, err := e.a.LogConsistency(ctx, 2, cp.Size); err != nil {
		t.Fatal(err)
	}
}

// checkWitness checks that r's witness proof links prev's checkpoint to
// r's.
func checkWitness(t *testing.T, prev, r *archivesig.Receipt) {
	t.Helper()
	old, err := prev.ArchiveRoot()
	if err != nil {
		t.Fatal(err)
	}
	cur, err := archivesig.CheckConsistency(&old, r)
	if err != nil {
		t.Fatalf("witness proof from %d to %d: %v", old.Size, cur.Size, err)
	}
	if old.Size < cur.Size && r.WitnessFrom != old.Size {
		t.Fatalf("witnessFrom %d, want %d", r.WitnessFrom, old.Size)
	}
}

func get(t *testing.T, url string) []byte {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %v", url, resp.StatusCode, errors.Join(err, errors.New(string(b))))
	}
	return b
}

// TestLogEngineMySQLFailed: the database server killed, the next append
// fails, the alarm storage.failed is raised and the archive answers
// nothing; restarted on the server restarted, the archive holds what it
// acknowledged and takes the bundle again.
func TestLogEngineMySQLFailed(t *testing.T) {
	srv := mariadbtest.Start(t)
	e := &env{t: t, dir: t.TempDir(), key: testKey, engine: archive.LogEngineMySQL, dsn: srv.Database(t)}
	e.open()
	t.Cleanup(func() {
		if e.a != nil {
			e.a.Close()
		}
	})
	c := newChain(t, 2, bundletest.Options{})
	e.approve(c)
	r0 := e.accept(c, c.Bundles[0])

	srv.Kill()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	if _, err := e.a.Receive(ctx, c.Opts.Site, c.Opts.Device, raw(t, c.Bundles[1])); err == nil {
		t.Fatal("a bundle accepted with the log's database gone")
	}
	select {
	case <-e.a.Failed():
	case <-ctx.Done():
		t.Fatal("Failed not closed after a failed append")
	}
	e.mu.Lock()
	raised := false
	for _, al := range e.alerts {
		raised = raised || al.Kind == archive.KindStorageFailed
	}
	e.mu.Unlock()
	if !raised || e.a.Err() == nil {
		t.Fatalf("storage.failed raised %v, Err %v", raised, e.a.Err())
	}
	_ = e.a.Close() // the server is gone: its error is expected
	e.a = nil

	srv.Restart()
	e.open()
	got, err := e.a.Receive(t.Context(), c.Opts.Site, c.Opts.Device, raw(t, c.Bundles[0]))
	if err != nil || string(got) != string(r0) {
		t.Fatalf("repeat after the restart: %v", err)
	}
	e.accept(c, c.Bundles[1])
	if res, err := e.a.Check(t.Context()); err != nil || !res.OK() {
		t.Fatalf("check: %+v %v", res, err)
	}
}

// engineEnv is an env whose archive log is on engine (MySQL on a MariaDB
// server of its own); it is not opened yet.
func engineEnv(t *testing.T, engine string) *env {
	t.Helper()
	e := &env{t: t, dir: t.TempDir(), key: testKey, engine: engine}
	if engine == archive.LogEngineMySQL {
		e.dsn = mariadbtest.Start(t).Database(t)
	}
	return e
}
