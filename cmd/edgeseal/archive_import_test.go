package main

import (
	"bytes"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
)

// TestArchiveImportUnreadableFolder: an import of a folder it cannot read
// fails naming it and prints no "N accepted, M refused; answers in" line,
// which would read as that folder's answer.
func TestArchiveImportUnreadableFolder(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "no-media")
	var out bytes.Buffer
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	err := cmdArchiveImport(t.Context(), []string{missing, "--data-dir", t.TempDir()}, &out, log)
	if err == nil || !strings.Contains(err.Error(), missing) || !strings.Contains(err.Error(), "0 accepted, 0 refused before it") {
		t.Fatalf("import of %s: %v", missing, err)
	}
	if strings.Contains(out.String(), "answers in") {
		t.Fatalf("a summary printed for a failed import:\n%s", out.String())
	}
}
