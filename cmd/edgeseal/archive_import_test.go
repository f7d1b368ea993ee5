package main

import (
	"bytes"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestArchiveImportWrongFolderMakesNothing: an import of a folder that
// is not there, or holds no *.tar bundle, is refused (exit 2, the folder
// named) before anything is made: no archive in a fresh --data-dir, no
// receipts/ in the folder, and no "N accepted, M refused; answers in"
// line, which would read as that folder's answer.
func TestArchiveImportWrongFolderMakesNothing(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty")
	if err := os.Mkdir(empty, 0o755); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	for _, folder := range []string{filepath.Join(dir, "no-media"), empty} {
		data := filepath.Join(dir, "data")
		var out bytes.Buffer
		err := cmdArchiveImport(t.Context(), []string{folder, "--data-dir", data}, &out, log)
		var ee *exitError
		if !errors.As(err, &ee) || ee.code != 2 || !strings.Contains(err.Error(), folder) {
			t.Errorf("import of %s: %v, want exit 2 naming it", folder, err)
		}
		if strings.Contains(out.String(), "answers in") {
			t.Errorf("a summary printed for a refused import:\n%s", out.String())
		}
		if _, err := os.Lstat(data); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("import of %s made the data dir: %v", folder, err)
		}
	}
	if _, err := os.Lstat(filepath.Join(empty, "receipts")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("import of an empty folder made its receipts/: %v", err)
	}
}
