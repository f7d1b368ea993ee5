package archive_test

import (
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/edgeseal/edgeseal/archive"
	"github.com/edgeseal/edgeseal/archive/objstoretest"
	"github.com/edgeseal/edgeseal/bundle/bundletest"
)

func TestFSStoreConformance(t *testing.T) {
	objstoretest.Run(t, objstoretest.Harness{
		Lister:       true,
		HashedPutter: true,
		New: func(t *testing.T) archive.ObjectStore {
			s, err := archive.NewFSStore(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			return s
		},
		Alter: func(t *testing.T, s archive.ObjectStore, digest [32]byte, data []byte) {
			p := s.(*archive.FSStore).Path(digest)
			if err := os.Chmod(p, 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, data, 0o444); err != nil {
				t.Fatal(err)
			}
		},
	})
}

func TestFSStoreReadOnly(t *testing.T) {
	s, err := archive.NewFSStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	data := []byte("write once")
	d := sha256Sum(data)
	if err := s.Put(t.Context(), d, data); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(s.Path(d))
	if err != nil || fi.Mode().Perm() != 0o444 {
		t.Fatalf("mode %v, %v; want 0444", fi.Mode(), err)
	}
	ents, _ := os.ReadDir(filepathDir(s.Path(d)))
	if len(ents) != 1 {
		t.Fatalf("temp files left: %v", ents)
	}
}

// TestScrubFindsBitFlip flips a bit in an archived bundle: Scrub names it
// and raises an alarm, the others read back clean.
func TestScrubFindsBitFlip(t *testing.T) {
	e := newEnv(t)
	c := newChain(t, 2, bundletest.Options{})
	e.approve(c)
	e.accept(c, c.Bundles[0])
	e.accept(c, c.Bundles[1])
	if res, err := e.a.Scrub(t.Context()); err != nil || res.Checked != 2 || len(res.Corrupt)+len(res.Missing) != 0 {
		t.Fatalf("clean scrub %+v, %v", res, err)
	}
	data := raw(t, c.Bundles[1])
	p := e.a.Objects().(*archive.FSStore).Path(sha256Sum(data))
	data[len(data)/3] ^= 0x01
	if err := os.Chmod(p, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, data, 0o444); err != nil {
		t.Fatal(err)
	}
	res, err := e.a.Scrub(t.Context())
	if err != nil || len(res.Corrupt) != 1 || res.Corrupt[0] != digestOf(raw(t, c.Bundles[1])) {
		t.Fatalf("scrub %+v, %v", res, err)
	}
	al, ok := e.alertFor(res.Corrupt[0])
	if !ok || al.Severity != archive.SeverityAlarm || al.Kind != archive.KindObjectCorrupt {
		t.Fatalf("alert %+v", al)
	}
}

// TestFSStoreLegacyLayout: an object an earlier build stored two fan-out
// levels deep (sha256/ab/cd/<hex>) is still found, still counts for
// write-once (the same bytes again store nothing new, other bytes there
// are a conflict), and new objects go one level deep.
func TestFSStoreLegacyLayout(t *testing.T) {
	root := t.TempDir()
	s, err := archive.NewFSStore(root)
	if err != nil {
		t.Fatal(err)
	}
	data := []byte("stored by an earlier build")
	d := sha256Sum(data)
	h := hex.EncodeToString(d[:])
	legacy := filepath.Join(root, "sha256", h[0:2], h[2:4], h)
	if s.Path(d) != filepath.Join(root, "sha256", h[0:2], h) {
		t.Fatalf("new objects go to %s", s.Path(d))
	}
	if err := os.MkdirAll(filepath.Dir(legacy), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(legacy, data, 0o444); err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	if got, err := s.Get(ctx, d); err != nil || string(got) != string(data) {
		t.Fatalf("Get of a legacy object: %q, %v", got, err)
	}
	if ok, err := s.Has(ctx, d); !ok || err != nil {
		t.Fatalf("Has of a legacy object: %v, %v", ok, err)
	}
	if err := s.Put(ctx, d, data); err != nil {
		t.Fatalf("Put of the same bytes: %v", err)
	}
	if _, err := os.Stat(s.Path(d)); !os.IsNotExist(err) {
		t.Fatalf("the same bytes were stored a second time (%v)", err)
	}
	if err := os.Chmod(legacy, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(legacy, []byte("other bytes"), 0o444); err != nil {
		t.Fatal(err)
	}
	if err := s.Put(ctx, d, data); !isConflict(err) {
		t.Fatalf("Put over a legacy object with other bytes: %v, want *archive.ConflictError", err)
	}
	if _, err := s.Get(ctx, d); !isCorrupt(err) {
		t.Fatalf("Get of an altered legacy object: %v, want *archive.CorruptError", err)
	}
}

func isConflict(err error) bool { _, ok := errors.AsType[*archive.ConflictError](err); return ok }
func isCorrupt(err error) bool  { _, ok := errors.AsType[*archive.CorruptError](err); return ok }

// TestFSStoreListReadOnly: a store opened read-only creates nothing (a
// missing store is an error) and lists the objects of both layouts,
// skipping temp files, symlinks and names that are not digests.
func TestFSStoreListReadOnly(t *testing.T) {
	root := t.TempDir()
	if _, err := archive.OpenFSStoreReadOnly(root); err == nil {
		t.Fatal("read-only open of a missing store")
	}
	if ents, _ := os.ReadDir(root); len(ents) != 0 {
		t.Fatalf("read-only open created %d entries", len(ents))
	}
	s, err := archive.NewFSStore(root)
	if err != nil {
		t.Fatal(err)
	}
	a, b := []byte("new layout"), []byte("legacy layout")
	da, db := sha256Sum(a), sha256Sum(b)
	if err := s.Put(t.Context(), da, a); err != nil {
		t.Fatal(err)
	}
	h := hex.EncodeToString(db[:])
	legacy := filepath.Join(root, "sha256", h[0:2], h[2:4], h)
	if err := os.MkdirAll(filepath.Dir(legacy), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(legacy, b, 0o444); err != nil {
		t.Fatal(err)
	}
	outside := filepath.Join(t.TempDir(), "outside")
	if err := os.WriteFile(outside, []byte("not in the store"), 0o644); err != nil {
		t.Fatal(err)
	}
	link := sha256Sum([]byte("not in the store"))
	lh := hex.EncodeToString(link[:])
	if err := os.Symlink(outside, filepath.Join(root, "sha256", lh[0:2], lh)); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "sha256", "00", ".tmp-123"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	ro, err := archive.OpenFSStoreReadOnly(root)
	if err != nil {
		t.Fatal(err)
	}
	got := map[[32]byte]bool{}
	if err := ro.List(t.Context(), func(d [32]byte) error { got[d] = true; return nil }); err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || !got[da] || !got[db] {
		t.Fatalf("listed %d objects (new %v, legacy %v), want the two stored", len(got), got[da], got[db])
	}
	if data, err := ro.Get(t.Context(), db); err != nil || string(data) != string(b) {
		t.Fatalf("read-only Get: %q %v", data, err)
	}
}
