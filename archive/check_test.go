package archive_test

import (
	"os"
	"testing"

	"github.com/edgeseal/edgeseal/bundle/bundletest"
)

// TestCheckAgreesThenFindsMissingObject: after two accepted bundles the
// log, the index and the object store agree, also after a reopen; an
// object removed behind the archive's back is reported missing.
func TestCheckAgreesThenFindsMissingObject(t *testing.T) {
	e := newEnv(t)
	c := newChain(t, 2, bundletest.Options{})
	e.approve(c)
	e.accept(c, c.Bundles[0])
	e.accept(c, c.Bundles[1])
	if res, err := e.a.Check(t.Context()); err != nil || !res.OK() || res.Checked != 2 {
		t.Fatalf("check of a clean archive: %+v, %v", res, err)
	}
	e.reopen()
	if res, err := e.a.Check(t.Context()); err != nil || !res.OK() || res.Checked != 2 {
		t.Fatalf("check after reopen: %+v, %v", res, err)
	}
	data := raw(t, c.Bundles[0])
	if err := os.Remove(e.a.Objects().(interface{ Path([32]byte) string }).Path(sha256Sum(data))); err != nil {
		t.Fatal(err)
	}
	res, err := e.a.Check(t.Context())
	if err != nil || res.OK() || len(res.Missing) != 1 || res.Missing[0] != digestOf(data) {
		t.Fatalf("check with an object removed: %+v, %v", res, err)
	}
}
