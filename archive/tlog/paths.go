package tlog

import (
	"strings"

	"github.com/transparency-dev/tessera/api/layout"
)

// maxPathLen bounds a request path (the longest tile path of a 64-bit
// index is well under it).
const maxPathLen = 128

// resource is one C2SP tlog-tiles resource.
type resource struct {
	kind  int // resCheckpoint, resTile or resEntries
	level uint64
	index uint64
	width uint8 // 0: full
}

const (
	resCheckpoint = iota + 1
	resTile
	resEntries
)

// parsePath parses a tlog-tiles path relative to the log's root
// ("checkpoint", "tile/<L>/<N>[.p/<W>]", "tile/entries/<N>[.p/<W>]").
// Only the canonical spelling is taken: the path must be exactly the
// one the parsed resource is served at.
func parsePath(p string) (resource, bool) {
	if len(p) > maxPathLen {
		return resource{}, false
	}
	if p == layout.CheckpointPath {
		return resource{kind: resCheckpoint}, true
	}
	rest, ok := strings.CutPrefix(p, "tile/")
	if !ok {
		return resource{}, false
	}
	level, idx, ok := strings.Cut(rest, "/")
	if !ok {
		return resource{}, false
	}
	var r resource
	if level == "entries" {
		i, w, err := layout.ParseTileIndexPartial(idx)
		if err != nil {
			return resource{}, false
		}
		r = resource{kind: resEntries, index: i, width: w}
		return r, layout.EntriesPath(i, w) == p
	}
	l, i, w, err := layout.ParseTileLevelIndexPartial(level, idx)
	if err != nil {
		return resource{}, false
	}
	r = resource{kind: resTile, level: l, index: i, width: w}
	return r, layout.TilePath(l, i, w) == p
}

// committed reports whether a tree of size entries commits to r: a full
// tile or bundle all of whose leaves are in the tree, or a partial one
// no wider than the tree then was.
func (r resource) committed(size uint64) bool {
	if r.kind == resCheckpoint {
		return true
	}
	var n uint64 // hashes in the tile row (entries for bundles)
	if r.level < 8 {
		n = size >> (8 * r.level)
	}
	full := n / layout.TileWidth
	if r.width == 0 {
		return r.index < full
	}
	return r.index < full || (r.index == full && uint64(r.width) <= n%layout.TileWidth)
}
