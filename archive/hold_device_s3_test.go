package archive_test

import (
	"crypto/ed25519"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/edgeseal/edgeseal/archive"
	"github.com/edgeseal/edgeseal/archive/s3store"
	"github.com/edgeseal/edgeseal/archive/s3store/s3test"
	"github.com/edgeseal/edgeseal/bundle/archivesig"
	"github.com/edgeseal/edgeseal/bundle/bundletest"
	"github.com/edgeseal/edgeseal/bundle/wire"
)

// TestDeviceHoldCoversLaterBundlesS3: on a real versitygw with Object
// Lock, a bundle of a held device accepted after the hold has its S3
// legal hold ON when its receipt comes back; past its retain-until the
// purge and the store's delete refuse it; the release turns it OFF.
func TestDeviceHoldCoversLaterBundlesS3(t *testing.T) {
	g := s3test.Start(t)
	ctx := t.Context()
	s, err := s3store.New(ctx, g.Options(g.Bucket(t)))
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, dir: t.TempDir(), key: testKey, op: operatorKey}
	a, err := archive.Open(ctx, archive.Options{
		Dir: e.dir, Key: e.key, Objects: s, Quarantine: e.quarLimits(),
		Classes: map[string]time.Duration{"7y": 2 * time.Second, "10y": time.Hour}, DefaultClass: "10y",
		OperatorKeys: []ed25519.PublicKey{operatorKey.Public().(ed25519.PublicKey)},
	})
	if err != nil {
		t.Fatal(err)
	}
	e.a = a
	t.Cleanup(func() { a.Close() })
	c := newChain(t, 2, bundletest.Options{})
	e.approve(c)
	accept := func(i int) (string, [32]byte) {
		t.Helper()
		r, err := archivesig.VerifyReceipt(e.accept(c, c.Bundles[i]), a.KeyID(), a.PublicKey())
		if err != nil {
			t.Fatal(err)
		}
		d, _ := wire.ParseHash(r.BundleDigest)
		return r.BundleDigest, d
	}
	held := func(d [32]byte) bool {
		t.Helper()
		_, h, err := s.Retained(ctx, d)
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	accept(0)
	if _, err := a.Hold(ctx, archive.HoldTarget{Device: c.DeviceName()}, "C-1", "alice", "", operatorKey, false); err != nil {
		t.Fatal(err)
	}
	digest, d1 := accept(1)
	if !held(d1) {
		t.Fatal("S3 legal hold of a bundle accepted after its device's hold is OFF")
	}
	until, _, err := s.Retained(ctx, d1)
	if err != nil {
		t.Fatal(err)
	}
	for time.Now().Before(until.Add(time.Second)) {
		time.Sleep(200 * time.Millisecond)
	}
	_, err = a.Purge(ctx, operatorKey, archive.PurgeOptions{By: "alice", Bundles: []string{digest}})
	if oe, ok := errors.AsType[*archive.OperatorError](err); !ok || !strings.Contains(oe.Reason, "legal hold") {
		t.Fatalf("purge of a held bundle past its retain-until: %v", err)
	}
	if err := s.Delete(ctx, d1); !isRetention(err) {
		t.Fatalf("store delete of a held bundle: %v", err)
	}
	if _, err := a.Hold(ctx, archive.HoldTarget{Device: c.DeviceName()}, "C-1", "alice", "", operatorKey, true); err != nil {
		t.Fatal(err)
	}
	if held(d1) {
		t.Fatal("S3 legal hold still ON after the release")
	}
	res, err := a.Purge(ctx, operatorKey, archive.PurgeOptions{By: "alice", Bundles: []string{digest}})
	if err != nil || len(res.Purged) != 1 {
		t.Fatalf("purge after the release: %v %+v", err, res)
	}
}
