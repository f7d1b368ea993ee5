package store_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/edgeseal/edgeseal/store"
	"github.com/edgeseal/edgeseal/store/indextest"
)

func TestIndexConformance(t *testing.T) {
	dir := t.TempDir()
	indextest.Run(t, func(t *testing.T, name string) store.IndexStore {
		x, err := store.OpenIndex(context.Background(), store.IndexOptions{Dir: filepath.Join(dir, name)})
		if err != nil {
			t.Fatal(err)
		}
		return x
	})
}

// TestOpenIndexDamaged: an index whose MANIFEST names a table that is gone
// fails to open with *store.IndexDamagedError (its owner may rebuild it);
// one open in another process fails with ErrLocked, not as damaged.
func TestOpenIndexDamaged(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	x, err := store.OpenIndex(ctx, store.IndexOptions{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if err := x.Write(ctx, []store.IndexOp{{Kind: store.IndexPut, Key: []byte("k"), Value: []byte("v")}}); err != nil {
		t.Fatal(err)
	}
	if err := x.Close(); err != nil { // flushes the memtable into a table
		t.Fatal(err)
	}
	tables, _ := filepath.Glob(filepath.Join(dir, "*.sst"))
	if len(tables) == 0 {
		t.Fatal("no table after close")
	}
	for _, f := range tables {
		if err := os.Remove(f); err != nil {
			t.Fatal(err)
		}
	}
	_, err = store.OpenIndex(ctx, store.IndexOptions{Dir: dir})
	var de *store.IndexDamagedError
	if !errors.As(err, &de) || de.Dir != dir {
		t.Fatalf("open without its tables: %v, want *IndexDamagedError", err)
	}

	ok := filepath.Join(t.TempDir(), "ok")
	y, err := store.OpenIndex(ctx, store.IndexOptions{Dir: ok})
	if err != nil {
		t.Fatal(err)
	}
	defer y.Close()
	if _, err := store.OpenIndex(ctx, store.IndexOptions{Dir: ok}); errors.As(err, &de) || err == nil {
		t.Fatalf("open while open: %v, want an error other than *IndexDamagedError", err)
	}
}

// TestIndexMemTableSize: IndexOptions.MemTableSize sets the memtable, and
// with it the largest Write.
func TestIndexMemTableSize(t *testing.T) {
	x, err := store.OpenIndex(t.Context(), store.IndexOptions{Dir: t.TempDir(), MemTableSize: 4 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer x.Close()
	if got, want := x.MaxBatchBytes(), (4<<20)*15/100/2; got != want {
		t.Fatalf("MaxBatchBytes %d with a 4 MiB memtable, want %d", got, want)
	}
	big := make([]byte, x.MaxBatchBytes())
	err = x.Write(t.Context(), []store.IndexOp{{Kind: store.IndexPut, Key: []byte("k"), Value: big}})
	if _, ok := errors.AsType[*store.IndexTooLargeError](err); !ok {
		t.Fatalf("a Write over MaxBatchBytes: %v, want *IndexTooLargeError", err)
	}
}
