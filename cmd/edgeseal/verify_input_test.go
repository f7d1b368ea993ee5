package main

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/edgeseal/edgeseal/bundle/bundletest"
)

// TestVerifyRefusesSpecialFiles: a FIFO given as a bundle, a trust file,
// --previous or --purged is refused at once (exit 2, named) instead of
// blocking in open until a writer comes, and so are a --previous that is
// a folder or larger than a bundle can be (before it is read); a link or
// special file among a folder's
// *.bundle.tar is named and refused, not skipped so that the folder's
// summary counts less than it holds.
func TestVerifyRefusesSpecialFiles(t *testing.T) {
	c := bundletest.MustChain(t, 1, bundletest.Options{})
	dir := t.TempDir()
	raw, err := c.Bundles[0].Bytes()
	if err != nil {
		t.Fatal(err)
	}
	tr, _ := c.Trust.Marshal()
	trust, real := filepath.Join(dir, "DEVICE.json"), filepath.Join(dir, "real.bundle.tar")
	for p, b := range map[string][]byte{trust: tr, real: raw} {
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
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
		done := make(chan error, 1)
		go func() { done <- cmdVerify(t.Context(), tc.args, io.Discard) }()
		select {
		case err := <-done:
			var ee *exitError
			if !errors.As(err, &ee) || ee.code != 2 || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("verify %v: %v, want exit 2 with %q", tc.args, err, tc.want)
			}
		case <-time.After(10 * time.Second):
			// Unblock the open so the test binary can end.
			if f, err := os.OpenFile(fifo, os.O_WRONLY|syscall.O_NONBLOCK, 0); err == nil {
				f.Close()
			}
			t.Fatalf("verify %v blocked", tc.args)
		}
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
	c := bundletest.MustChain(t, 1, bundletest.Options{})
	dir := t.TempDir()
	raw, err := c.Bundles[0].Bytes()
	if err != nil {
		t.Fatal(err)
	}
	tr, _ := c.Trust.Marshal()
	trust, b := filepath.Join(dir, "DEVICE.json"), filepath.Join(dir, "b.bundle.tar")
	for p, data := range map[string][]byte{trust: tr, b: raw} {
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
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
