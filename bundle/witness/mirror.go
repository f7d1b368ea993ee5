package witness

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/tlog"
)

// Bounds of a log copy.
const (
	tileHeight    = 8   // C2SP tlog-tiles
	tileWidth     = 256 // hashes in a full tile
	maxTileBytes  = tileWidth * 32
	maxNoteBytes  = 4096 // the checkpoint file
	maxCachedTile = 4096 // tiles kept in memory at once
	maxLevels     = 8    // levels of tiles a 64-bit tree can have
)

// ErrMirror reports a log copy that cannot be read: a missing, oversize,
// malformed or linked file.
var ErrMirror = errors.New("witness: log copy")

// Mirror is a directory copy of an archive's /log/ tlog-tiles tree as
// served: "checkpoint" and "tile/<L>/<N>[.p/<W>]". Files are opened
// beneath the directory only (os.Root), never through a symbolic link
// (each component is checked with Lstat, the last opened with
// O_NOFOLLOW), only regular files, each bounded.
type Mirror struct {
	root  *os.Root
	dir   string
	Note  []byte // the copy's signed checkpoint, as read
	size  uint64 // its tree size (set by SetSize once the note is parsed)
	tiles map[tlog.Tile][]byte
}

// OpenMirror opens the copy in dir and reads its checkpoint file.
func OpenMirror(dir string) (*Mirror, error) {
	fi, err := os.Lstat(dir)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMirror, err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("%w: %s: not a folder", ErrMirror, dir)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMirror, err)
	}
	m := &Mirror{root: root, dir: dir, tiles: map[tlog.Tile][]byte{}}
	if m.Note, err = m.read("checkpoint", maxNoteBytes); err != nil {
		root.Close()
		return nil, err
	}
	return m, nil
}

// Close releases the directory.
func (m *Mirror) Close() error { return m.root.Close() }

// Dir is the copy's directory.
func (m *Mirror) Dir() string { return m.dir }

// SetSize sets the tree size of the copy's checkpoint: tiles are read as
// that tree has them (full tiles, and the partial tile at its edge).
func (m *Mirror) SetSize(n uint64) { m.size = n }

// read returns the file at the slash-separated rel, at most limit bytes.
func (m *Mirror) read(rel string, limit int64) ([]byte, error) {
	if !fs.ValidPath(rel) || strings.Contains(rel, "\\") {
		return nil, fmt.Errorf("%w: bad path %q", ErrMirror, rel)
	}
	parts := strings.Split(rel, "/")
	for i := range parts {
		p := strings.Join(parts[:i+1], "/")
		fi, err := m.root.Lstat(p)
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %v", ErrMirror, p, err)
		}
		if fi.Mode()&fs.ModeSymlink != 0 {
			return nil, fmt.Errorf("%w: %s: a symbolic link", ErrMirror, p)
		}
		if i < len(parts)-1 && !fi.IsDir() {
			return nil, fmt.Errorf("%w: %s: not a folder", ErrMirror, p)
		}
	}
	f, err := m.root.OpenFile(rel, os.O_RDONLY|noFollow, 0)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrMirror, rel, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrMirror, rel, err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%w: %s: not a regular file", ErrMirror, rel)
	}
	if fi.Size() > limit {
		return nil, fmt.Errorf("%w: %s: over %d bytes", ErrMirror, rel, limit)
	}
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrMirror, rel, err)
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%w: %s: over %d bytes", ErrMirror, rel, limit)
	}
	return b, nil
}

// TilePath is the C2SP tlog-tiles path of the hash tile at level and
// index, of width w (tileWidth: a full tile, no ".p/" suffix): the index
// in 3-digit groups, all but the last prefixed with "x".
func TilePath(level, index uint64, w int) string {
	s := fmt.Sprintf("%03d", index%1000)
	for index >= 1000 {
		index /= 1000
		s = fmt.Sprintf("x%03d/", index%1000) + s
	}
	p := "tile/" + strconv.FormatUint(level, 10) + "/" + s
	if w < tileWidth {
		p += ".p/" + strconv.Itoa(w)
	}
	return p
}

// ReadHashes implements tlog.HashReader over the copy's tiles, as the
// tree of the copy's size has them.
func (m *Mirror) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	for i, x := range indexes {
		t := tlog.TileForIndex(tileHeight, x)
		if t.L < 0 || t.L >= maxLevels {
			return nil, fmt.Errorf("%w: hash index %d beyond the tree", ErrMirror, x)
		}
		n := m.size >> (tileHeight * uint(t.L)) // hashes at the tile row's level
		full := n / tileWidth
		switch {
		case uint64(t.N) < full:
			t.W = tileWidth
		case uint64(t.N) == full && n%tileWidth > 0:
			t.W = int(n % tileWidth)
		default:
			return nil, fmt.Errorf("%w: hash index %d beyond the copy's tree of size %d", ErrMirror, x, m.size)
		}
		data, ok := m.tiles[t]
		if !ok {
			var err error
			data, err = m.read(TilePath(uint64(t.L), uint64(t.N), t.W), maxTileBytes)
			if err != nil {
				return nil, err
			}
			if len(data) != t.W*32 {
				return nil, fmt.Errorf("%w: %s: %d bytes, want %d", ErrMirror, TilePath(uint64(t.L), uint64(t.N), t.W), len(data), t.W*32)
			}
			if len(m.tiles) >= maxCachedTile {
				clear(m.tiles)
			}
			m.tiles[t] = data
		}
		h, err := tlog.HashFromTile(t, data, x)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrMirror, err)
		}
		out[i] = h
	}
	return out, nil
}

// TreeRoot is the root of the tree of size n (at most the copy's size)
// as the copy's tiles give it.
func (m *Mirror) TreeRoot(n uint64) ([32]byte, error) {
	if n > m.size || n > 1<<62 {
		return [32]byte{}, fmt.Errorf("%w: size %d beyond the copy's %d", ErrMirror, n, m.size)
	}
	h, err := tlog.TreeHash(int64(n), m)
	if err != nil {
		return [32]byte{}, fmt.Errorf("%w: tree of size %d: %v", ErrMirror, n, err)
	}
	return h, nil
}
