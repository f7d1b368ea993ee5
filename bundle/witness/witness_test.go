package witness

import (
	"crypto/ed25519"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func collector(t *testing.T, keys ...ed25519.PrivateKey) *Collector { return collector2(t, keys...) }

func collector2(t testing.TB, keys ...ed25519.PrivateKey) *Collector {
	t.Helper()
	var pubs []ed25519.PublicKey
	for _, k := range keys {
		pubs = append(pubs, k.Public().(ed25519.PublicKey))
	}
	c, err := NewCollector(origin, pubs...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func addRec(t *testing.T, c *Collector, dev string, seq uint64, body []byte) {
	t.Helper()
	if err := c.AddRecord(dev, dev+".bundle.tar", seq, body); err != nil {
		t.Fatal(err)
	}
}

func result(r *Report, name string) Result {
	for _, c := range r.Checks {
		if c.Name == name {
			return c
		}
	}
	return Result{}
}

// failed lists the failed checks.
func failed(r *Report) []string {
	var out []string
	for _, c := range r.Checks {
		if !c.OK {
			out = append(out, c.Name)
		}
	}
	return out
}

func openMirror(t *testing.T, c *Collector, dir string) (*Mirror, *Sighting) {
	t.Helper()
	m, err := OpenMirror(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	ms, err := c.AddMirror(m)
	if err != nil {
		t.Fatal(err)
	}
	return m, ms
}

// TestHonestArchive: two devices' chains of one log, proofs between
// them and a copy of the log with full and partial tiles on two levels:
// every check passes and everything is related.
func TestHonestArchive(t *testing.T) {
	key := newKey(t, "archive")
	l := (&testLog{key: key}).grow(800, "e")
	c := collector(t, key)
	addRec(t, c, "site-a/dev-1", 10, l.record(t, 5, 0))
	addRec(t, c, "site-a/dev-1", 20, l.record(t, 300, 5))
	addRec(t, c, "site-a/dev-1", 30, l.record(t, 700, 300))
	addRec(t, c, "site-b/dev-2", 4, l.record(t, 300, 0))
	addRec(t, c, "site-b/dev-2", 9, l.record(t, 513, 300))
	r := Check(c, nil, nil)
	if !r.OK() || result(r, CheckLog).Skipped != true {
		t.Fatalf("honest archive without a copy: %+v", r)
	}
	if len(r.Unrelated) != 2 {
		t.Fatalf("700 and 513 are not related by a proof, want two tops: %q", r.Unrelated)
	}
	m, ms := openMirror(t, c, l.mirror(t, 790))
	r = Check(c, m, ms)
	if !r.OK() || r.Unrelated != nil || r.Distinct != 5 {
		t.Fatalf("honest archive with its copy: %+v", r)
	}
	if d := result(r, CheckLog).Detail; !strings.Contains(d, "5 checkpoint(s)") {
		t.Fatalf("log check: %s", d)
	}
}

// TestEquivocation: an archive that showed device 1 one log and device 2
// another (same key) is caught: the same size with two roots
// (archive.fork, naming both devices); checkpoints of different sizes
// that only share a prefix are reported as not related without a copy
// of the log, and as inconsistent with one.
func TestEquivocation(t *testing.T) {
	key := newKey(t, "archive")
	honest := (&testLog{key: key}).grow(10, "e")
	evil := honest.fork(10)
	honest.grow(20, "h")
	evil.grow(20, "x")

	c := collector(t, key)
	addRec(t, c, "site-a/dev-1", 1, honest.record(t, 10, 0))
	addRec(t, c, "site-a/dev-1", 2, honest.record(t, 20, 10))
	addRec(t, c, "site-b/dev-2", 1, evil.record(t, 10, 0))
	addRec(t, c, "site-b/dev-2", 2, evil.record(t, 20, 10))
	r := Check(c, nil, nil)
	if got := failed(r); !slices.Equal(got, []string{CheckFork}) {
		t.Fatalf("failed %v, want [%s]", got, CheckFork)
	}
	f := result(r, CheckFork).Messages
	if len(f) != 1 || !strings.Contains(f[0], "site-a/dev-1") || !strings.Contains(f[0], "site-b/dev-2") || !strings.Contains(f[0], "size 20") {
		t.Fatalf("fork message %q", f)
	}

	// Different sizes: 20 and 25 share the prefix 10; nothing relates them.
	evil.grow(5, "y")
	c = collector(t, key)
	addRec(t, c, "site-a/dev-1", 1, honest.record(t, 10, 0))
	addRec(t, c, "site-a/dev-1", 2, honest.record(t, 20, 10))
	addRec(t, c, "site-b/dev-2", 1, evil.record(t, 10, 0))
	addRec(t, c, "site-b/dev-2", 2, evil.record(t, 25, 10))
	r = Check(c, nil, nil)
	if !r.OK() || len(r.Unrelated) != 2 {
		t.Fatalf("unrelated sizes: ok %v, unrelated %q", r.OK(), r.Unrelated)
	}
	m, ms := openMirror(t, c, honest.mirror(t, 30))
	r = Check(c, m, ms)
	if got := failed(r); !slices.Equal(got, []string{CheckLog}) {
		t.Fatalf("with the honest log's copy: failed %v", got)
	}
	if f := result(r, CheckLog).Messages; len(f) != 1 || !strings.Contains(f[0], "site-b/dev-2") || !strings.Contains(f[0], "log copy") {
		t.Fatalf("log messages %q", f)
	}
}

// TestChainProof: a consistency proof that does not hold, a device that
// went back, and a note no trusted key signed each fail their check.
func TestChainProof(t *testing.T) {
	key := newKey(t, "archive")
	l := (&testLog{key: key}).grow(40, "e")
	bad := l.record(t, 40, 7)
	i := strings.Index(string(bad), `"witnessProof":["`) + len(`"witnessProof":["`)
	bad[i] ^= 'A' ^ 'B'
	c := collector(t, key)
	addRec(t, c, "site-a/dev-1", 1, l.record(t, 7, 0))
	addRec(t, c, "site-a/dev-1", 2, bad)
	addRec(t, c, "site-b/dev-2", 1, l.record(t, 30, 0))
	addRec(t, c, "site-b/dev-2", 2, l.record(t, 20, 0))
	addRec(t, c, "site-b/dev-2", 3, (&testLog{key: newKey(t, "other")}).grow(3, "o").record(t, 3, 0))
	r := Check(c, nil, nil)
	if got := failed(r); !slices.Equal(got, []string{CheckSignature, CheckChain}) {
		t.Fatalf("failed %v", got)
	}
	if f := result(r, CheckChain).Messages; len(f) != 2 {
		t.Fatalf("chain failures %q", f)
	}
}

// TestMirrorRefused: a copy whose checkpoint or tile is a symbolic link,
// under a linked folder, or oversize is refused; a damaged tile fails
// archive.log as a damaged copy (no evidence either way).
func TestMirrorRefused(t *testing.T) {
	key := newKey(t, "archive")
	l := (&testLog{key: key}).grow(300, "e")
	link := func(dir, rel string) {
		p := filepath.Join(dir, rel)
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		real := filepath.Join(t.TempDir(), "real")
		if err := os.WriteFile(real, data, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Remove(p); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(real, p); err != nil {
			t.Fatal(err)
		}
	}
	dir := l.mirror(t, 300)
	link(dir, "checkpoint")
	if _, err := OpenMirror(dir); err == nil || !strings.Contains(err.Error(), "symbolic link") {
		t.Fatalf("linked checkpoint: %v", err)
	}
	for _, rel := range []string{"tile/0/000", "tile/0/001.p/44", "tile/1/000.p/1"} {
		dir := l.mirror(t, 300)
		link(dir, rel)
		c := collector(t, key)
		addRec(t, c, "site-a/dev-1", 1, l.record(t, 100, 0))
		m, ms := openMirror(t, c, dir)
		r := Check(c, m, ms)
		if res := result(r, CheckLog); res.OK || !strings.Contains(res.Detail+strings.Join(res.Messages, ""), "symbolic link") {
			t.Fatalf("linked %s: %+v", rel, res)
		}
	}
	// A linked folder.
	dir = l.mirror(t, 300)
	moved := filepath.Join(t.TempDir(), "tile")
	if err := os.Rename(filepath.Join(dir, "tile"), moved); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(moved, filepath.Join(dir, "tile")); err != nil {
		t.Fatal(err)
	}
	c := collector(t, key)
	m, ms := openMirror(t, c, dir)
	if res := result(Check(c, m, ms), CheckLog); res.OK || !strings.Contains(res.Detail, "symbolic link") {
		t.Fatalf("linked folder: %+v", res)
	}
	// Oversize and damaged tiles.
	dir = l.mirror(t, 300)
	if err := os.WriteFile(filepath.Join(dir, "tile/1/000.p/1"), make([]byte, maxTileBytes+1), 0o644); err != nil {
		t.Fatal(err)
	}
	c = collector(t, key)
	m, ms = openMirror(t, c, dir)
	if res := result(Check(c, m, ms), CheckLog); res.OK || !strings.Contains(res.Detail, "over 8192 bytes") {
		t.Fatalf("oversize tile: %+v", res)
	}
	dir = l.mirror(t, 300)
	p := filepath.Join(dir, "tile/0/001.p/44")
	data, _ := os.ReadFile(p)
	data[5] ^= 1
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	c = collector(t, key)
	m, ms = openMirror(t, c, dir)
	if res := result(Check(c, m, ms), CheckLog); res.OK || !strings.Contains(res.Detail, "damaged") {
		t.Fatalf("damaged tile: %+v", res)
	}
	// A copy signed by another key is not taken.
	dir = (&testLog{key: newKey(t, "other")}).grow(3, "o").mirror(t, 3)
	m, err := OpenMirror(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if _, err := collector(t, key).AddMirror(m); err == nil {
		t.Fatal("copy of another key taken")
	}
}

func TestTilePath(t *testing.T) {
	for _, c := range []struct {
		l, n uint64
		w    int
		want string
	}{
		{0, 0, 256, "tile/0/000"},
		{0, 1234067, 256, "tile/0/x001/x234/067"},
		{1, 1000, 7, "tile/1/x001/000.p/7"},
		{2, 999, 255, "tile/2/999.p/255"},
	} {
		if got := TilePath(c.l, c.n, c.w); got != c.want {
			t.Errorf("TilePath(%d,%d,%d) = %q, want %q", c.l, c.n, c.w, got, c.want)
		}
	}
}
