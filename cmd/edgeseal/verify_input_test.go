package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestVerifyRefusesSpecialFiles: a FIFO given as a bundle, a trust file,
// --previous or --purged is refused at once (exit 2, named) instead of
// blocking in open until a writer comes, and so are a --previous that is
// a folder or larger than a bundle can be (before it is read); a link or
// special file among a folder's
// *.bundle.tar is named and refused, not skipped so that the folder's
// summary counts less than it holds.
func TestVerifyRefusesSpecialFiles(t *testing.T) {
	dir := t.TempDir()
	trust, real := writeChain(t, dir, "real.bundle.tar")
	fifo := filepath.Join(dir, "fifo.bundle.tar")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatalf("mkfifo: %v", err)
	}
	folder := filepath.Join(dir, "folder")
	if err := os.Mkdir(folder, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(real, filepath.Join(folder, "a.bundle.tar")); err != nil {
		t.Fatal(err)
	}
	big := filepath.Join(dir, "big.bundle.tar")
	if err := os.WriteFile(big, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(big, int64(maxPreviousSize)+1); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{fifo, "--trust", trust}, fifo + ": not a regular file"},
		{[]string{real, "--trust", fifo}, "trust file: " + fifo + ": not a regular file"},
		{[]string{real, "--trust", trust, "--previous", fifo}, "previous: " + fifo + ": not a regular file"},
		{[]string{real, "--trust", trust, "--previous", folder}, "previous: read " + folder + ": is a directory"},
		{[]string{real, "--trust", trust, "--previous", big}, "previous: " + big + ": larger than"},
		{[]string{real, "--trust", trust, "--purged", fifo}, fifo + ": not a regular file"},
		{[]string{folder, "--trust", trust}, filepath.Join(folder, "a.bundle.tar") + ": not a regular file"},
	} {
		wantRefused(t, fmt.Sprintf("verify %v", tc.args), fifo, tc.want, func() error { return cmdVerify(t.Context(), tc.args, io.Discard) })
	}
	// A link the user names is still followed.
	if err := cmdVerify(t.Context(), []string{filepath.Join(folder, "a.bundle.tar"), "--trust", trust, "--quiet"}, io.Discard); err != nil {
		t.Fatalf("verify of a named link: %v", err)
	}
}

// TestVerifyStateOutCheckedFirst: a --state-out that cannot be written (a
// folder, a file in a missing folder, below a file) is refused with exit
// 2 before anything is verified or printed; a good one is written.
func TestVerifyStateOutCheckedFirst(t *testing.T) {
	dir := t.TempDir()
	trust, b := writeChain(t, dir, "b.bundle.tar")
	for _, out := range []string{dir, filepath.Join(dir, "missing", "state.json"), filepath.Join(trust, "state.json")} {
		var stdout strings.Builder
		err := cmdVerify(t.Context(), []string{b, "--trust", trust, "--state-out", out}, &stdout)
		var ee *exitError
		if !errors.As(err, &ee) || ee.code != 2 || !strings.Contains(err.Error(), "--state-out") {
			t.Errorf("--state-out %s: %v, want exit 2 naming --state-out", out, err)
		}
		if stdout.Len() != 0 {
			t.Errorf("--state-out %s: printed before the refusal:\n%s", out, stdout.String())
		}
	}
	good := filepath.Join(dir, "state.json")
	if err := cmdVerify(t.Context(), []string{b, "--trust", trust, "--state-out", good, "--quiet"}, io.Discard); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(good); err != nil {
		t.Fatal(err)
	}
}
