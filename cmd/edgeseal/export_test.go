package main

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestExportDirectory: a directory given as the file to export is a usage
// error (exit 2) saying so, before the agent is asked anything.
func TestExportDirectory(t *testing.T) {
	dir := t.TempDir()
	tok := filepath.Join(dir, "token")
	if err := os.WriteFile(tok, []byte("0123456789abcdef\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	args := []string{"--socket", filepath.Join(dir, "none.sock"), "--token-file", tok, "--workflow", "w", "--app", "a", dir}
	err := cmdExport(t.Context(), args, strings.NewReader(""), io.Discard, func(string) string { return "" })
	var ee *exitError
	if !errors.As(err, &ee) || ee.code != 2 || !strings.Contains(err.Error(), dir+" is a directory") {
		t.Fatalf("export of a directory: %v, want exit 2 saying it is a directory", err)
	}
}
