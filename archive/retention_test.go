package archive_test

import (
	"context"
	"crypto/ed25519"
	"errors"
	"strings"
	gosync "sync"
	"testing"
	"time"

	"github.com/edgeseal/edgeseal/archive"
	"github.com/edgeseal/edgeseal/bundle"
	"github.com/edgeseal/edgeseal/bundle/archivesig"
	"github.com/edgeseal/edgeseal/bundle/bundletest"
	"github.com/edgeseal/edgeseal/bundle/verify"
	"github.com/edgeseal/edgeseal/bundle/wire"
)

// testClock is a clock the test moves.
type testClock struct {
	mu gosync.Mutex
	t  time.Time
}

func (c *testClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

var operatorKey = ed25519.NewKeyFromSeed([]byte("operator-key-seed-for-tests-0001"))

// retentionEnv opens an archive with retention classes and one operator
// key on the filesystem store, its clock the test's.
func retentionEnv(t *testing.T, classes map[string]time.Duration, def string) (*env, *testClock) {
	t.Helper()
	clk := &testClock{t: time.Date(2026, 11, 26, 2, 0, 0, 0, time.UTC)}
	e := &env{t: t, dir: t.TempDir(), key: testKey, op: operatorKey}
	open := func() {
		a, err := archive.Open(t.Context(), archive.Options{
			Dir: e.dir, Key: e.key, Now: clk.now, Quarantine: e.quarLimits(),
			Classes: classes, DefaultClass: def, OperatorKeys: []ed25519.PublicKey{operatorKey.Public().(ed25519.PublicKey)},
			Alert: func(_ context.Context, al archive.Alert) {
				e.mu.Lock()
				e.alerts = append(e.alerts, al)
				e.mu.Unlock()
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		e.a = a
	}
	open()
	t.Cleanup(func() {
		if e.a != nil {
			e.a.Close()
		}
	})
	return e, clk
}

// lastStatement reads the operator statement at the end of the log.
func lastStatement(t *testing.T, a *archive.Archive) *archive.OperatorStatement {
	t.Helper()
	rec, err := a.LogRecord(a.LogSize() - 1)
	if err != nil {
		t.Fatal(err)
	}
	s, err := archive.ParseOperatorStatement(rec)
	if err != nil {
		t.Fatalf("log record %d: %v", a.LogSize()-1, err)
	}
	return s
}

func TestRetentionClassHoldPurge(t *testing.T) {
	ctx := t.Context()
	e, clk := retentionEnv(t, map[string]time.Duration{"7y": time.Hour, "10y": 2 * time.Hour}, "10y")
	c := newChain(t, 2, bundletest.Options{})
	e.approve(c)
	t0 := clk.now()
	var digests []string
	var d0, d1 [32]byte
	for i, b := range c.Bundles {
		reply := e.accept(c, b)
		r, err := archivesig.VerifyReceipt(reply, e.a.KeyID(), e.a.PublicKey())
		if err != nil {
			t.Fatal(err)
		}
		// The chain's export records are of class 7y: one hour here.
		if want := wire.FormatTime(t0.Add(time.Hour)); r.RetentionUntil != want {
			t.Fatalf("bundle %d: receipt retentionUntil %s, want %s (class 7y)", i, r.RetentionUntil, want)
		}
		digests = append(digests, r.BundleDigest)
	}
	d0, _ = wire.ParseHash(digests[0])
	d1, _ = wire.ParseHash(digests[1])
	ret := e.a.Objects().(archive.Retainer)
	until, held, err := ret.Retained(ctx, d0)
	if err != nil || held || !until.Equal(t0.Add(time.Hour)) {
		t.Fatalf("object retention %s held %v err %v, want %s", until, held, err, t0.Add(time.Hour))
	}

	// Before expiry: a purge of the bundle is refused, the store refuses
	// the deletion, a purge of everything purges nothing.
	_, err = e.a.Purge(ctx, operatorKey, archive.PurgeOptions{By: "alice", Bundles: []string{digests[0]}})
	if oe, ok := errors.AsType[*archive.OperatorError](err); !ok || !strings.Contains(oe.Reason, "retained until") {
		t.Fatalf("purge before expiry: %v", err)
	}
	if err := ret.Delete(ctx, d0); !isRetention(err) {
		t.Fatalf("delete before expiry: %v", err)
	}
	res, err := e.a.Purge(ctx, operatorKey, archive.PurgeOptions{By: "alice"})
	if err != nil || len(res.Purged) != 0 || len(res.Retained) != 2 || res.Logged != nil {
		t.Fatalf("purge before expiry: %+v %v", res, err)
	}

	// A key that is not an operator's is refused.
	stranger := ed25519.NewKeyFromSeed(make([]byte, 32))
	if _, err := e.a.Hold(ctx, archive.HoldTarget{Bundle: digests[1]}, "C-1", "mallory", "", stranger, false); err == nil {
		t.Fatal("a hold signed by a stranger's key was accepted")
	}

	// A legal hold on bundle 1: logged, signed, the object held.
	size := e.a.LogSize()
	h, err := e.a.Hold(ctx, archive.HoldTarget{Device: c.DeviceName()}, "C-1", "alice", "subpoena", operatorKey, false)
	if err != nil {
		t.Fatal(err)
	}
	if h.LogIndex != size || len(h.Statement.Objects) != 2 {
		t.Fatalf("hold logged at %d (log size %d) on %v", h.LogIndex, size, h.Statement.Objects)
	}
	if s := lastStatement(t, e.a); s.Type != archive.StatementHoldSet || s.Case != "C-1" || s.Key != archive.KeyID(operatorKey.Public().(ed25519.PublicKey)) {
		t.Fatalf("logged statement %+v", s)
	}
	// Release bundle 0 only.
	if _, err := e.a.Hold(ctx, archive.HoldTarget{Bundle: digests[0]}, "C-1", "alice", "", operatorKey, true); err != nil {
		t.Fatal(err)
	}
	if _, held, _ := ret.Retained(ctx, d1); !held {
		t.Fatal("bundle 1 not under legal hold in the store")
	}
	if _, held, _ := ret.Retained(ctx, d0); held {
		t.Fatal("bundle 0 still under legal hold after its release")
	}

	// After expiry: the held bundle is refused, the other purged.
	clk.add(90 * time.Minute)
	_, err = e.a.Purge(ctx, operatorKey, archive.PurgeOptions{By: "alice", Bundles: []string{digests[1]}})
	if oe, ok := errors.AsType[*archive.OperatorError](err); !ok || !strings.Contains(oe.Reason, "legal hold") {
		t.Fatalf("purge under hold: %v", err)
	}
	if err := ret.Delete(ctx, d1); !isRetention(err) {
		t.Fatalf("delete under hold: %v", err)
	}
	dry, err := e.a.Purge(ctx, operatorKey, archive.PurgeOptions{By: "alice", DryRun: true})
	if err != nil || len(dry.Purged) != 1 || dry.Logged != nil {
		t.Fatalf("dry run: %+v %v", dry, err)
	}
	if ok, _ := e.a.Objects().Has(ctx, d0); !ok {
		t.Fatal("a dry run deleted the bundle")
	}
	size = e.a.LogSize()
	res, err = e.a.Purge(ctx, operatorKey, archive.PurgeOptions{By: "alice", Reason: "retention over"})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Purged) != 1 || res.Purged[0].Bundle != digests[0] || res.Logged == nil || res.Logged.LogIndex != size {
		t.Fatalf("purge: %+v", res)
	}
	tomb := lastStatement(t, e.a)
	p := tomb.Purged[0]
	if tomb.Type != archive.StatementPurge || tomb.By != "alice" || p.Class != "7y" || p.RetainUntil != wire.FormatTime(t0.Add(time.Hour)) || len(p.Payloads) == 0 {
		t.Fatalf("tombstone %+v", tomb)
	}
	if ok, _ := e.a.Objects().Has(ctx, d0); ok {
		t.Fatal("the purged bundle is still stored")
	}
	if _, ok := res.Retained[digests[1]]; !ok {
		t.Fatalf("held bundle not reported retained: %v", res.Retained)
	}

	// The skeleton verifies with the payloads shown purged; the log's
	// checkpoint covers the statement; the receipt of the purged bundle
	// still proves its leaf.
	sd, _ := wire.ParseHash(p.Skeleton)
	sraw, err := e.a.Objects().Get(ctx, sd)
	if err != nil {
		t.Fatal(err)
	}
	skel, err := bundle.ReadBytes(sraw, bundle.DefaultLimits)
	if err != nil {
		t.Fatal(err)
	}
	var gone [][32]byte
	for _, h := range p.Payloads {
		d, _ := wire.ParseHash(h)
		gone = append(gone, d)
	}
	rep := verify.VerifyPurged(skel, c.Trust, nil, gone)
	if !rep.OK() {
		t.Fatalf("skeleton does not verify:\n%s", rep)
	}
	if rep := verify.Verify(skel, c.Trust, nil); rep.OK() {
		t.Fatal("a skeleton verifies as a whole bundle")
	}
	if rep.State.Checkpoint != c.States[0].Checkpoint {
		t.Fatal("the skeleton's state differs from the bundle's")
	}
	// The device's chain goes on from the skeleton: bundle 1 verifies on it.
	if r := verify.Verify(c.Bundles[1], c.Trust, rep.State); !r.OK() {
		t.Fatalf("bundle 1 on the purged bundle 0:\n%s", r)
	}
	if _, err := verifyNote(e.a, string(res.Logged.Checkpoint)); err != nil {
		t.Fatalf("checkpoint after the purge: %v", err)
	}
	// A hold by export id finds the purged bundle by its skeleton's records.
	hx, err := e.a.Hold(ctx, archive.HoldTarget{Export: "exp-000001"}, "C-2", "alice", "", operatorKey, false)
	if err != nil || len(hx.Statement.Objects) != 1 || hx.Statement.Objects[0] != digests[0] {
		t.Fatalf("hold by export: %+v %v", hx, err)
	}
	if _, held, err := ret.Retained(ctx, sd); err != nil || !held {
		t.Fatalf("the skeleton of a held purged bundle: held %v %v", held, err)
	}
	sc, err := e.a.Scrub(ctx)
	if err != nil || len(sc.Missing)+len(sc.Corrupt) != 0 {
		t.Fatalf("scrub after purge: %+v %v", sc, err)
	}

	// Reopened, the archive reads the log back; a second purge purges
	// nothing more; a bundle sent again is answered with its receipt.
	if err := e.a.Close(); err != nil {
		t.Fatal(err)
	}
	e.a = nil
	e2 := reopenRetention(t, e, clk)
	res, err = e2.Purge(ctx, operatorKey, archive.PurgeOptions{By: "alice"})
	if err != nil || len(res.Purged) != 0 {
		t.Fatalf("second purge: %+v %v", res, err)
	}
	if _, err := e2.Receive(ctx, c.Opts.Site, c.Opts.Device, raw(t, c.Bundles[0])); err != nil {
		t.Fatalf("purged bundle sent again: %v", err)
	}
}

func reopenRetention(t *testing.T, e *env, clk *testClock) *archive.Archive {
	t.Helper()
	a, err := archive.Open(t.Context(), archive.Options{
		Dir: e.dir, Key: e.key, Now: clk.now, Quarantine: e.quarLimits(),
		Classes: map[string]time.Duration{"7y": time.Hour, "10y": 2 * time.Hour}, DefaultClass: "10y",
		OperatorKeys: []ed25519.PublicKey{operatorKey.Public().(ed25519.PublicKey)},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	return a
}

func isRetention(err error) bool {
	_, ok := errors.AsType[*archive.RetentionError](err)
	return ok
}

func TestRetentionUnknownClassRefused(t *testing.T) {
	e, _ := retentionEnv(t, map[string]time.Duration{"10y": time.Hour}, "10y")
	c := newChain(t, 1, bundletest.Options{})
	e.approve(c)
	rj := e.refused(c.Opts.Site, c.Opts.Device, raw(t, c.Bundles[0]), archive.CheckRetention)
	if !strings.Contains(rj.Error(), `"7y"`) {
		t.Fatalf("rejection does not name the class: %v", rj)
	}
}
