package main

import (
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestArchiveCheckNoArchive: `archive check` of a data directory that is
// absent, or holds no archive, fails with exit 2 naming it, and creates
// nothing there (no key, no journals).
func TestArchiveCheckNoArchive(t *testing.T) {
	base := t.TempDir()
	missing := filepath.Join(base, "typo")
	empty := filepath.Join(base, "empty")
	if err := os.Mkdir(empty, 0o750); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	for _, dir := range []string{missing, empty} {
		err := cmdArchiveCheck(t.Context(), []string{"--data-dir", dir}, io.Discard, log)
		var ee *exitError
		if err == nil || !errors.As(err, &ee) || ee.code != 2 || !strings.Contains(err.Error(), "no archive at "+dir) {
			t.Errorf("check %s: %v, want exit 2 naming it", dir, err)
		}
	}
	if _, err := os.Lstat(missing); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("check created %s: %v", missing, err)
	}
	if ents, _ := os.ReadDir(empty); len(ents) != 0 {
		t.Errorf("check wrote into %s: %v", empty, ents)
	}
}
