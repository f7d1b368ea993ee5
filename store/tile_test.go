package store

import (
	"context"
	"errors"
	"fmt"
	"testing"
)

// TestTileHashes checks hash tiles against subtree hashes computed
// from the leaves, and refuses tiles not complete in the tree.
func TestTileHashes(t *testing.T) {
	j := openT(t, t.TempDir())
	defer j.Close()
	var leaves [][32]byte
	for i := range 700 {
		a, err := j.Append(context.Background(), Entry{Build: build(fmt.Sprintf("tile record %d", i))})
		if err != nil {
			t.Fatal(err)
		}
		leaves = append(leaves, a.Leaf)
	}
	want := func(level, index uint64, width int) []byte {
		var b []byte
		span := 1 << (8 * level)
		for k := range width {
			first := (int(index)*256 + k) * span
			h := mth(leaves[first : first+span])
			b = append(b, h[:]...)
		}
		return b
	}
	for _, tc := range []struct {
		level, index uint64
		width        int
	}{{0, 0, 256}, {0, 1, 256}, {0, 2, 188}, {0, 2, 1}, {1, 0, 2}, {1, 0, 1}} {
		got, err := j.TileHashes(tc.level, tc.index, tc.width)
		if err != nil {
			t.Fatalf("TileHashes(%d, %d, %d): %v", tc.level, tc.index, tc.width, err)
		}
		if string(got) != string(want(tc.level, tc.index, tc.width)) {
			t.Fatalf("TileHashes(%d, %d, %d) differs from the subtree hashes", tc.level, tc.index, tc.width)
		}
	}
	for _, tc := range []struct {
		level, index uint64
		width        int
	}{{0, 2, 189}, {0, 3, 1}, {1, 0, 3}, {2, 0, 1}, {0, 0, 0}, {0, 0, 257}, {8, 0, 1}, {0, 1 << 56, 1}} {
		if _, err := j.TileHashes(tc.level, tc.index, tc.width); !errors.As(err, new(*RangeError)) {
			t.Errorf("TileHashes(%d, %d, %d): %v, want *RangeError", tc.level, tc.index, tc.width, err)
		}
	}
}
