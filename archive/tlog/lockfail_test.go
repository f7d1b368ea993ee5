package tlog_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/edgeseal/edgeseal/archive/tlog/tlogtest"
)

// TestPOSIXLockFailure: when the POSIX log's tree-state lock file cannot
// be opened (here it is a folder: the open fails as a failed open(2)
// does), an append fails with an error instead of the driver panicking
// (the patched Tessera, third_party/README.md); the entries taken before
// stay, and the log appends again once the lock file opens.
func TestPOSIXLockFailure(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	s, v := tlogtest.Keys(t, "edgeseal-archive")
	dir := t.TempDir()
	l := openPOSIX(t, dir, s, v)
	defer l.Close(ctx)
	if _, err := l.Append(ctx, []byte("before")); err != nil {
		t.Fatal(err)
	}
	lock := filepath.Join(dir, ".state", "treeState.lock")
	if err := os.Remove(lock); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(lock, 0o700); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Append(ctx, []byte("while the lock fails")); err == nil {
		t.Fatal("append without its lock succeeded")
	}
	if err := os.Remove(lock); err != nil {
		t.Fatal(err)
	}
	idx, err := l.Append(ctx, []byte("after"))
	if err != nil || idx != 1 {
		t.Fatalf("append after the lock came back: %d %v, want index 1", idx, err)
	}
	if e, err := l.Entry(ctx, 0); err != nil || string(e) != "before" {
		t.Fatalf("entry 0: %q %v", e, err)
	}
}
