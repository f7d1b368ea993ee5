package store_test

import (
	"context"
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
