package archive_test

import (
	"context"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgeseal/edgeseal/archive"
	"github.com/edgeseal/edgeseal/bundle/bundletest"
	"github.com/edgeseal/edgeseal/bundle/custody"
)

// countingStore is the FS object store counting its Gets.
type countingStore struct {
	*archive.FSStore
	gets atomic.Int64
}

func (c *countingStore) Get(ctx context.Context, digest [32]byte) ([]byte, error) {
	c.gets.Add(1)
	return c.FSStore.Get(ctx, digest)
}

func newCountingStore(t *testing.T, dir string) *countingStore {
	t.Helper()
	fs, err := archive.NewFSStore(filepath.Join(dir, "objects"))
	if err != nil {
		t.Fatal(err)
	}
	fs.SetClock(func() time.Time { return time.Date(2026, 11, 26, 2, 0, 0, 0, time.UTC) })
	return &countingStore{FSStore: fs}
}

// TestAdminsFromIndex: the policy admin keys of accepted bundles are
// kept in the index, so Open knows them without reading a stored bundle:
// after a restart the object store saw no Get, and a statement of an
// operator key that a policy named as admin is still refused.
func TestAdminsFromIndex(t *testing.T) {
	dir := t.TempDir()
	e := &env{t: t, dir: dir, key: testKey, op: operatorKey, objects: newCountingStore(t, dir)}
	e.open()
	t.Cleanup(func() {
		if e.a != nil {
			e.a.Close()
		}
	})
	body, digest := adminPolicyChange(t, operatorKey)
	c := newChain(t, 0, bundletest.Options{Site: "site1", Device: "dev3", Records: 4, KeyCreate: true, Policy: digest})
	c.Journal(custody.TypePolicyChange, custody.Actor{Kind: "agent", ID: "policy", Via: "start"}, body)
	e.approve(c)
	for range 3 {
		b, err := c.Next(t.Context(), 4)
		if err != nil {
			t.Fatal(err)
		}
		e.accept(c, b)
	}
	if err := e.a.Close(); err != nil {
		t.Fatal(err)
	}
	cs := newCountingStore(t, dir)
	e.objects = cs
	e.open()
	if n := cs.gets.Load(); n != 0 {
		t.Fatalf("Open read %d stored bundles", n)
	}
	if _, err := e.deviceStatement(archive.StatementDeviceRevoke, "site1/dev3", "", "test", operatorKey); !isOperatorErr(err) {
		t.Fatalf("after a restart, statement of a policy admin's key: %v", err)
	}
}
