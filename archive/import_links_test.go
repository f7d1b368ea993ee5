package archive_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/edgeseal/edgeseal/bundle/bundletest"
	"github.com/edgeseal/edgeseal/sync/media"
)

// TestImportDirRefusesSymlinks: a receipts folder or a bundle file that is
// a symbolic link stops the import before anything is stored or written,
// with an error naming the link.
func TestImportDirRefusesSymlinks(t *testing.T) {
	e := newEnv(t)
	c := newChain(t, 1, bundletest.Options{})
	e.approve(c)
	name, err := c.Bundles[0].FileName()
	if err != nil {
		t.Fatal(err)
	}

	t.Run("receipts", func(t *testing.T) {
		dir, elsewhere := t.TempDir(), t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, name), raw(t, c.Bundles[0]), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(elsewhere, filepath.Join(dir, media.ReceiptsDir)); err != nil {
			t.Fatal(err)
		}
		_, err := e.a.ImportDir(t.Context(), dir)
		var se *media.SymlinkError
		if !errors.As(err, &se) || se.Path != filepath.Join(dir, media.ReceiptsDir) || !strings.Contains(err.Error(), "symbolic link") {
			t.Fatalf("want a *SymlinkError naming the receipts folder, got %v", err)
		}
		if ents, _ := os.ReadDir(elsewhere); len(ents) != 0 {
			t.Fatalf("answers written through the link: %v", ents)
		}
		if e.a.LogSize() != 0 {
			t.Fatalf("log size %d after a refused import", e.a.LogSize())
		}
	})

	t.Run("bundle", func(t *testing.T) {
		dir, elsewhere := t.TempDir(), t.TempDir()
		target := filepath.Join(elsewhere, name)
		if err := os.WriteFile(target, raw(t, c.Bundles[0]), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(target, filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
		_, err := e.a.ImportDir(t.Context(), dir)
		var se *media.SymlinkError
		if !errors.As(err, &se) || se.Path != filepath.Join(dir, name) || !strings.Contains(err.Error(), "symbolic link") {
			t.Fatalf("want a *SymlinkError naming the bundle file, got %v", err)
		}
		if _, err := os.Lstat(filepath.Join(dir, media.ReceiptsDir)); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("receipts folder created by a refused import: %v", err)
		}
		if e.a.LogSize() != 0 {
			t.Fatalf("log size %d after a refused import", e.a.LogSize())
		}
	})
}
