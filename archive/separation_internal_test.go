package archive

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgeseal/edgeseal/bundle/bundletest"
)

// CountingStore is the filesystem object store counting its Gets (the
// external tests use it too).
type CountingStore struct {
	*FSStore
	Gets atomic.Int64
}

// Get implements ObjectStore.
func (c *CountingStore) Get(ctx context.Context, digest [32]byte) ([]byte, error) {
	c.Gets.Add(1)
	return c.FSStore.Get(ctx, digest)
}

// NewCountingStore opens the filesystem store under root, counting Gets.
func NewCountingStore(t testing.TB, root string, now func() time.Time) *CountingStore {
	t.Helper()
	fs, err := NewFSStore(root)
	if err != nil {
		t.Fatal(err)
	}
	fs.SetClock(now)
	return &CountingStore{FSStore: fs}
}

// enrollChain records the chain's DEVICE.json as a pending enrollment.
func enrollChain(t *testing.T, a *Archive, c *bundletest.Chain) *EnrollRequest {
	t.Helper()
	tb, err := c.Trust.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	req, err := ParseEnrollRequest(tb)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.devices.Enroll(t.Context(), req); err != nil {
		t.Fatal(err)
	}
	return req
}

// An index whose accept events predate "admins": the first Open with
// operator keys reads those bundles once and records a policy.admins
// event; the next Open reads none.
func TestAdminsOfLegacyEvents(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	key := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, 32))
	op := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{8}, 32))
	open := func(ops []ed25519.PublicKey) (*Archive, *CountingStore) {
		t.Helper()
		gc := NewCountingStore(t, filepath.Join(dir, "objects"), time.Now)
		a, err := Open(ctx, Options{Dir: dir, Key: key, Objects: gc, OperatorKeys: ops})
		if err != nil {
			t.Fatal(err)
		}
		return a, gc
	}
	c, err := bundletest.NewChain(ctx, nil, 3, bundletest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	a, _ := open(nil)
	a.legacyEvents = true
	enrollChain(t, a, c)
	if _, err := a.devices.Approve(ctx, c.DeviceName(), c.Trust.KeyID, "op"); err != nil {
		t.Fatal(err)
	}
	for _, b := range c.Bundles {
		raw, err := b.Bytes()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := a.Receive(ctx, c.Opts.Site, c.Opts.Device, raw); err != nil {
			t.Fatal(err)
		}
	}
	// The export index reads stored bundles in the background; let it
	// catch up so the counts below are only what Open itself reads.
	if err := a.WaitIndexed(ctx, a.LogSize()); err != nil {
		t.Fatal(err)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	ops := []ed25519.PublicKey{op.Public().(ed25519.PublicKey)}
	a, gc := open(ops)
	if n := gc.Gets.Load(); n != 3 {
		t.Fatalf("first Open with operator keys read %d bundles, want 3", n)
	}
	size := a.index.Size()
	last, err := a.index.Record(size - 1)
	if err != nil || !isAdminsEvent(last) {
		t.Fatalf("last index record %s (%v), want a policy.admins event", last, err)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	a, gc = open(ops)
	defer a.Close()
	if n := gc.Gets.Load(); n != 0 || len(a.idxAdmins.legacy) != 0 {
		t.Fatalf("second Open read %d bundles (%d legacy events)", n, len(a.idxAdmins.legacy))
	}
}

// FuzzParseAdminsEvent: a policy.admins index event is read strictly,
// without panic.
func FuzzParseAdminsEvent(f *testing.F) {
	f.Add([]byte(`{"v":1,"type":"policy.admins","time":"2026-12-07T03:00:00.000000Z","admins":[{"key":"sha256:` + string(bytes.Repeat([]byte("ab"), 32)) + `","device":"s/d"}]}`))
	f.Add([]byte(`{"v":1,"type":"policy.admins","time":"","admins":null}`))
	f.Fuzz(func(t *testing.T, rec []byte) {
		ev, err := parseAdminsEvent(rec)
		if err != nil {
			return
		}
		for _, ad := range ev.Admins {
			if len(ad.Key) != 71 {
				t.Fatalf("admin key %q accepted", ad.Key)
			}
		}
	})
}
