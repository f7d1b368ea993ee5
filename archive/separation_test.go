package archive_test

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/edgeseal/edgeseal/archive"
	"github.com/edgeseal/edgeseal/bundle/bundletest"
	"github.com/edgeseal/edgeseal/bundle/custody"
)

func newCountingStore(t *testing.T, dir string) *archive.CountingStore {
	t.Helper()
	return archive.NewCountingStore(t, filepath.Join(dir, "objects"), func() time.Time { return time.Date(2026, 11, 26, 2, 0, 0, 0, time.UTC) })
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
	// The export index reads stored bundles in the background; let it
	// catch up so the count below is only what Open itself reads.
	if err := e.a.WaitIndexed(t.Context(), e.a.LogSize()); err != nil {
		t.Fatal(err)
	}
	if err := e.a.Close(); err != nil {
		t.Fatal(err)
	}
	cs := newCountingStore(t, dir)
	e.objects = cs
	e.open()
	if n := cs.Gets.Load(); n != 0 {
		t.Fatalf("Open read %d stored bundles", n)
	}
	if _, err := e.deviceStatement(archive.StatementDeviceRevoke, "site1/dev3", "", "test", operatorKey); !isOperatorErr(err) {
		t.Fatalf("after a restart, statement of a policy admin's key: %v", err)
	}
}
