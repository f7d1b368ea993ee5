package witness

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzMirror: a log copy's checkpoint and tiles are hostile bytes: any
// content is refused or checked, never a panic, and a copy whose tiles
// do not give its checkpoint's root never passes.
func FuzzMirror(f *testing.F) {
	key := newKey(f, "archive")
	l := (&testLog{key: key}).grow(300, "e")
	seed := l.mirror(f, 300)
	read := func(rel string) []byte {
		b, err := os.ReadFile(filepath.Join(seed, rel))
		if err != nil {
			f.Fatal(err)
		}
		return b
	}
	f.Add(read("checkpoint"), read("tile/0/001.p/44"), read("tile/1/000.p/1"))
	f.Add([]byte("edgeseal-archive\n300\n\n\n"), []byte{}, make([]byte, 33))
	f.Fuzz(func(t *testing.T, note, tile0, tile1 []byte) {
		dir := t.TempDir()
		for rel, data := range map[string][]byte{"checkpoint": note, "tile/0/000": read("tile/0/000"), "tile/0/001.p/44": tile0, "tile/1/000.p/1": tile1} {
			p := filepath.Join(dir, filepath.FromSlash(rel))
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, data, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		m, err := OpenMirror(dir)
		if err != nil {
			return
		}
		defer m.Close()
		c := collector2(t, key)
		if err := c.AddRecord("site-a/dev-1", "fuzz", 1, l.record(t, 200, 0)); err != nil {
			t.Fatal(err)
		}
		ms, err := c.AddMirror(m)
		if err != nil {
			return
		}
		r := Check(c, m, ms)
		if r.OK() && ms.Size == 300 && (string(tile0) != string(read("tile/0/001.p/44")) || string(tile1) != string(read("tile/1/000.p/1"))) {
			t.Fatalf("changed tiles passed")
		}
	})
}

// FuzzRecord: an archive.checkpoint body from a bundle is refused or
// collected, never a panic.
func FuzzRecord(f *testing.F) {
	key := newKey(f, "archive")
	l := (&testLog{key: key}).grow(30, "e")
	f.Add(l.record(f, 7, 0))
	f.Add(l.record(f, 30, 7))
	f.Add([]byte(`{"checkpoint":"x","receipt":"sha256:00"}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		c := collector2(t, key)
		if err := c.AddRecord("site-a/dev-1", "fuzz", 1, body); err != nil {
			return
		}
		_ = Check(c, nil, nil)
	})
}
