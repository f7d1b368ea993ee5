package store_test

import (
	"bytes"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/edgeseal/edgeseal/store"
)

// TestIndexLoader: keys loaded in ascending order (values below and above
// the value-log threshold) read back from OpenIndex exactly, by Get and by
// Scan both ways, and the index takes writes after; a key out of order and
// a directory that is not empty are refused.
func TestIndexLoader(t *testing.T) {
	ctx := t.Context()
	dir := filepath.Join(t.TempDir(), "x")
	l, err := store.LoadIndex(ctx, store.IndexOptions{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	const n = 20000
	key := func(i int) []byte { return fmt.Appendf(nil, "k%08d", i) }
	val := func(i int) []byte { return bytes.Repeat([]byte{byte(i)}, i%700) }
	for i := range n {
		if err := l.Put(key(i), val(i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Put(key(5), nil); err == nil {
		t.Fatal("a key out of order was taken")
	}
	if l.Keys() != n {
		t.Fatalf("%d keys put", l.Keys())
	}
	if err := l.Finish(); err != nil {
		t.Fatal(err)
	}
	if _, err := store.LoadIndex(ctx, store.IndexOptions{Dir: dir}); err == nil {
		t.Fatal("a load into a directory that is not empty")
	}
	x, err := store.OpenIndex(ctx, store.IndexOptions{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer x.Close()
	for _, i := range []int{0, 1, 699, 700, 12345, n - 1} {
		v, err := x.Get(ctx, key(i))
		if err != nil || !bytes.Equal(v, val(i)) {
			t.Fatalf("get %d: %d bytes, %v", i, len(v), err)
		}
	}
	for _, rev := range []bool{false, true} {
		i, next := 0, 1
		if rev {
			i, next = n-1, -1
		}
		seen := 0
		if err := x.Scan(ctx, store.IndexRange{Lo: []byte("k"), Hi: []byte("l"), Reverse: rev}, func(k, v []byte) bool {
			if !bytes.Equal(k, key(i)) || !bytes.Equal(v, val(i)) {
				t.Fatalf("scan (reverse %v): key %s, want %s", rev, k, key(i))
			}
			i += next
			seen++
			return true
		}); err != nil || seen != n {
			t.Fatalf("scan (reverse %v): %d keys, %v", rev, seen, err)
		}
	}
	if err := x.Write(ctx, []store.IndexOp{{Kind: store.IndexPut, Key: []byte("k"), Value: []byte("after")}}); err != nil {
		t.Fatal(err)
	}
	if v, err := x.Get(ctx, []byte("k")); err != nil || string(v) != "after" {
		t.Fatalf("a write after the load: %q %v", v, err)
	}
}
