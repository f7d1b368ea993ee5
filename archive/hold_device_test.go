package archive_test

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/edgeseal/edgeseal/archive"
	"github.com/edgeseal/edgeseal/bundle/archivesig"
	"github.com/edgeseal/edgeseal/bundle/bundletest"
	"github.com/edgeseal/edgeseal/bundle/wire"
)

// TestDeviceHoldCoversLaterBundles (FS store): a legal hold of a device
// holds the bundles of it accepted after the hold, also after a restart:
// each is stored under hold before its receipt, a purge refuses it past
// its retention, and the release of the case lists and clears them; a
// bundle accepted after the release is not held.
func TestDeviceHoldCoversLaterBundles(t *testing.T) {
	ctx := t.Context()
	e, clk := retentionEnv(t, map[string]time.Duration{"7y": time.Hour, "10y": 2 * time.Hour}, "10y")
	c := newChain(t, 4, bundletest.Options{})
	e.approve(c)
	ret := e.a.Objects().(archive.Retainer)
	accept := func(i int) string {
		t.Helper()
		r, err := archivesig.VerifyReceipt(e.accept(c, c.Bundles[i]), e.a.KeyID(), e.a.PublicKey())
		if err != nil {
			t.Fatal(err)
		}
		return r.BundleDigest
	}
	held := func(digest string) bool {
		t.Helper()
		d, _ := wire.ParseHash(digest)
		_, h, err := ret.Retained(ctx, d)
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	d0 := accept(0)
	h, err := e.a.Hold(ctx, archive.HoldTarget{Device: c.DeviceName()}, "C-1", "alice", "subpoena", operatorKey, false)
	if err != nil || !slices.Equal(h.Statement.Objects, []string{d0}) {
		t.Fatalf("hold: %v %+v", err, h)
	}
	d1 := accept(1)
	if !held(d1) {
		t.Fatal("a bundle accepted after its device's hold is not stored under hold")
	}
	// After a restart the hold still covers the device.
	e.a.Close()
	e.a = reopenRetention(t, e, clk)
	ret = e.a.Objects().(archive.Retainer)
	d2 := accept(2)
	if !held(d2) {
		t.Fatal("after a restart, a bundle of the held device is not stored under hold")
	}
	// Past retention: the purge refuses them, the store too.
	clk.add(3 * time.Hour)
	_, err = e.a.Purge(ctx, operatorKey, archive.PurgeOptions{By: "alice", Bundles: []string{d2}})
	if oe, ok := errors.AsType[*archive.OperatorError](err); !ok || !strings.Contains(oe.Reason, "legal hold") {
		t.Fatalf("purge of a bundle held by its device's hold: %v", err)
	}
	dd2, _ := wire.ParseHash(d2)
	if err := ret.Delete(ctx, dd2); !isRetention(err) {
		t.Fatalf("store delete of a held bundle: %v", err)
	}
	if res, err := e.a.Purge(ctx, operatorKey, archive.PurgeOptions{By: "alice"}); err != nil || len(res.Purged) != 0 {
		t.Fatalf("purge while the device is held: %v %+v", err, res)
	}
	// The release names every bundle the case holds and clears them.
	r, err := e.a.Hold(ctx, archive.HoldTarget{Device: c.DeviceName()}, "C-1", "alice", "", operatorKey, true)
	want := []string{d0, d1, d2}
	slices.Sort(want)
	if err != nil || !slices.Equal(r.Statement.Objects, want) {
		t.Fatalf("release: %v %+v, want %v", err, r, want)
	}
	for _, d := range want {
		if held(d) {
			t.Fatalf("%s still held after the release", d)
		}
	}
	if d3 := accept(3); held(d3) {
		t.Fatal("a bundle accepted after the release is held")
	}
	res, err := e.a.Purge(ctx, operatorKey, archive.PurgeOptions{By: "alice"})
	if err != nil || len(res.Purged) != 3 {
		t.Fatalf("purge after the release: %v %+v", err, res)
	}
}

// TestDeviceHoldBeforeAnyBundle: a device hold may name no bundle yet;
// the device's first bundle is then stored held, and the release of the
// case ends the hold.
func TestDeviceHoldBeforeAnyBundle(t *testing.T) {
	ctx := t.Context()
	e, _ := retentionEnv(t, map[string]time.Duration{"7y": time.Hour, "10y": 2 * time.Hour}, "10y")
	c := newChain(t, 2, bundletest.Options{})
	e.approve(c)
	h, err := e.a.Hold(ctx, archive.HoldTarget{Device: c.DeviceName()}, "C-9", "alice", "", operatorKey, false)
	if err != nil || h.Statement.Objects != nil {
		t.Fatalf("hold of a device without bundles: %v %+v", err, h)
	}
	if _, err := archive.ParseOperatorStatement(mustRecord(t, e.a, h.LogIndex)); err != nil {
		t.Fatalf("the logged hold does not parse: %v", err)
	}
	ret := e.a.Objects().(archive.Retainer)
	r, err := archivesig.VerifyReceipt(e.accept(c, c.Bundles[0]), e.a.KeyID(), e.a.PublicKey())
	if err != nil {
		t.Fatal(err)
	}
	d, _ := wire.ParseHash(r.BundleDigest)
	if _, held, err := ret.Retained(ctx, d); err != nil || !held {
		t.Fatalf("first bundle after the device hold: held %v, %v", held, err)
	}
	rel, err := e.a.Hold(ctx, archive.HoldTarget{Device: c.DeviceName()}, "C-9", "alice", "", operatorKey, true)
	if err != nil || !slices.Equal(rel.Statement.Objects, []string{r.BundleDigest}) {
		t.Fatalf("release: %v %+v", err, rel)
	}
	if _, err := e.a.Hold(ctx, archive.HoldTarget{Device: c.DeviceName()}, "C-9", "alice", "", operatorKey, true); err == nil {
		t.Fatal("a second release of a case that holds nothing")
	}
	r2, err := archivesig.VerifyReceipt(e.accept(c, c.Bundles[1]), e.a.KeyID(), e.a.PublicKey())
	if err != nil {
		t.Fatal(err)
	}
	d2, _ := wire.ParseHash(r2.BundleDigest)
	if _, held, err := ret.Retained(ctx, d2); err != nil || held {
		t.Fatalf("bundle after the release: held %v, %v", held, err)
	}
}

func mustRecord(t *testing.T, a *archive.Archive, i uint64) []byte {
	t.Helper()
	rec, err := a.LogRecord(i)
	if err != nil {
		t.Fatal(err)
	}
	return rec
}
