package bundletest

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/edgeseal/edgeseal/bundle"
)

// MustChain is NewChain of a software TPM's chain of n bundles; it fails
// t at once on error.
func MustChain(t testing.TB, n int, opts Options) *Chain {
	t.Helper()
	c, err := NewChain(context.Background(), nil, n, opts)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// MustWriteMedia writes each bundle into dir under its file name, as
// removable media for `archive import` hold them, and returns the file
// names in the order given; it fails t at once on error.
func MustWriteMedia(t testing.TB, dir string, bs ...*bundle.Bundle) []string {
	t.Helper()
	names := make([]string, 0, len(bs))
	for _, b := range bs {
		name, err := b.FileName()
		if err != nil {
			t.Fatal(err)
		}
		raw, err := b.Bytes()
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), raw, 0o644); err != nil {
			t.Fatal(err)
		}
		names = append(names, name)
	}
	return names
}

// MustArchiveLog is NewArchiveLog; it fails t at once on error.
func MustArchiveLog(t testing.TB) *ArchiveLog {
	t.Helper()
	l, err := NewArchiveLog()
	if err != nil {
		t.Fatal(err)
	}
	return l
}
