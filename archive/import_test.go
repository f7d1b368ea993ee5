package archive_test

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/edgeseal/edgeseal/archive"
	"github.com/edgeseal/edgeseal/bundle/archivesig"
	"github.com/edgeseal/edgeseal/bundle/bundletest"
	"github.com/edgeseal/edgeseal/sync"
)

func TestImportDir(t *testing.T) {
	e := newEnv(t)
	c := newChain(t, 3, bundletest.Options{})
	e.approve(c)
	dir := t.TempDir()
	bundletest.MustWriteMedia(t, dir, c.Bundles...)
	if err := os.WriteFile(filepath.Join(dir, "zz_garbage.tar"), []byte("not a tar"), 0o644); err != nil {
		t.Fatal(err)
	}
	for round := range 2 { // a second import answers the same
		res, err := e.a.ImportDir(t.Context(), dir)
		if err != nil {
			t.Fatal(err)
		}
		if len(res) != 4 {
			t.Fatalf("%d results", len(res))
		}
		for i, im := range res[:3] {
			if !im.Accepted || im.Device != c.DeviceName() {
				t.Fatalf("round %d file %s: %+v", round, im.File, im)
			}
			reply, err := os.ReadFile(im.Reply)
			if err != nil {
				t.Fatal(err)
			}
			e.checkReceipt(reply, raw(t, c.Bundles[i]), c.DeviceName())
		}
		var rj *archive.RejectedError
		if g := res[3]; g.Accepted || !errors.As(g.Err, &rj) || !rj.Has(archive.CheckRead) {
			t.Fatalf("garbage: %+v", g)
		}
		if _, err := sync.VerifyRejection(mustRead(t, res[3].Reply), e.a.KeyID(), e.a.PublicKey()); err != nil {
			t.Fatal(err)
		}
	}
	if e.a.LogSize() != 3 {
		t.Fatalf("log size %d", e.a.LogSize())
	}
	_ = archivesig.ReceiptPayloadType
}

func mustRead(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
