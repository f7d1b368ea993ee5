package tlog

import (
	"testing"

	"github.com/transparency-dev/tessera/api/layout"
)

func TestCommitted(t *testing.T) {
	for _, tc := range []struct {
		r    resource
		size uint64
		want bool
	}{
		{resource{kind: resCheckpoint}, 0, true},
		{resource{kind: resTile}, 255, false},
		{resource{kind: resTile}, 256, true},
		{resource{kind: resTile, width: 255}, 255, true},
		{resource{kind: resTile, width: 255}, 254, false},
		{resource{kind: resTile, width: 1}, 1000, true}, // an older partial of a full tile
		{resource{kind: resTile, index: 3, width: 232}, 1000, true},
		{resource{kind: resTile, index: 3, width: 233}, 1000, false},
		{resource{kind: resTile, index: 4, width: 1}, 1000, false},
		{resource{kind: resTile, level: 1, width: 3}, 1000, true},
		{resource{kind: resTile, level: 1, width: 4}, 1000, false},
		{resource{kind: resTile, level: 1}, 1 << 16, true},
		{resource{kind: resTile, level: 1}, 1<<16 - 1, false},
		{resource{kind: resTile, level: 7}, ^uint64(0), false}, // 2^64 leaves
		{resource{kind: resTile, level: 7, width: 255}, ^uint64(0), true},
		{resource{kind: resTile, level: 6, index: 254}, ^uint64(0), true},
		{resource{kind: resTile, level: 6, index: 255}, ^uint64(0), false},
		{resource{kind: resTile, level: 8, width: 1}, ^uint64(0), false},
		{resource{kind: resTile, level: 63, width: 1}, ^uint64(0), false},
		{resource{kind: resEntries, index: 3}, 1024, true},
		{resource{kind: resEntries, index: 4}, 1024, false},
		{resource{kind: resEntries, index: ^uint64(0)}, ^uint64(0), false},
	} {
		if got := tc.r.committed(tc.size); got != tc.want {
			t.Errorf("%+v in %d: %v, want %v", tc.r, tc.size, got, tc.want)
		}
	}
}

func TestParsePath(t *testing.T) {
	for p, want := range map[string]resource{
		"checkpoint":                                {kind: resCheckpoint},
		"tile/0/000":                                {kind: resTile},
		"tile/2/x001/x234/067.p/8":                  {kind: resTile, level: 2, index: 1234067, width: 8},
		"tile/entries/x001/x234/067":                {kind: resEntries, index: 1234067},
		"tile/entries/000.p/255":                    {kind: resEntries, width: 255},
		"tile/63/x018/x446/x744/x073/x709/x551/615": {kind: resTile, level: 63, index: ^uint64(0)},
	} {
		got, ok := parsePath(p)
		if !ok || got != want {
			t.Errorf("parsePath(%q) = %+v, %v; want %+v", p, got, ok, want)
		}
	}
	for _, p := range []string{"tile/64/000", "tile/0/x018/x446/x744/x073/x709/x551/616", "tile/0/x000/000", "tile/entries/x1/000"} {
		if r, ok := parsePath(p); ok {
			t.Errorf("parsePath(%q) = %+v, want refusal", p, r)
		}
	}
}

// FuzzParsePath: whatever the path, parsePath accepts only the canonical
// spelling of what it parsed, and committed never panics.
func FuzzParsePath(f *testing.F) {
	for _, s := range []string{"checkpoint", "tile/0/000", "tile/1/x001/002.p/9", "tile/entries/x999/999", "tile/0/000.p/0", "tile/entries/../x"} {
		f.Add(s, uint64(1000))
	}
	f.Fuzz(func(t *testing.T, p string, size uint64) {
		r, ok := parsePath(p)
		if !ok {
			return
		}
		var canon string
		switch r.kind {
		case resCheckpoint:
			canon = layout.CheckpointPath
		case resTile:
			canon = layout.TilePath(r.level, r.index, r.width)
		case resEntries:
			canon = layout.EntriesPath(r.index, r.width)
		}
		if canon != p {
			t.Fatalf("parsePath(%q) took a non-canonical path (%q)", p, canon)
		}
		_ = r.committed(size)
	})
}
