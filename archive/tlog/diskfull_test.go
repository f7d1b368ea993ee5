//go:build linux

package tlog_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/edgeseal/edgeseal/archive/tlog"
	"github.com/edgeseal/edgeseal/archive/tlog/tlogtest"
	"github.com/edgeseal/edgeseal/bundle/merkle"
	"github.com/edgeseal/edgeseal/internal/tmpfstest"
)

// TestDiskFullAcknowledgesNothingUnwritten fills the log's file system
// while 16 goroutines append: appends then fail (none is acknowledged
// unwritten), the log stays readable and whole, and once space is freed
// appends go on; reopened, every acknowledged entry is at its index and
// the published checkpoint matches the entries.
func TestDiskFullAcknowledgesNothingUnwritten(t *testing.T) {
	mnt := tmpfstest.Mount(t, 32<<20)
	dir := filepath.Join(mnt, "log")
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	s, v := tlogtest.Keys(t, "edgeseal-archive")
	open := func() *tlog.Tessera {
		l, err := tlog.OpenPOSIX(ctx, tlog.POSIXOptions{Dir: dir, Signer: s, Verifier: v, CheckpointInterval: 100 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	l := open()
	// Leave about 256 KiB free.
	filler := filepath.Join(mnt, "filler")
	if err := os.WriteFile(filler, make([]byte, 32<<20-256<<10), 0o600); err != nil {
		t.Fatal(err)
	}
	acked := map[uint64]string{}
	var mu sync.Mutex
	failures := 0
	var lastErr error
	run := func(tag string, n int, stopOnFailure bool) {
		var wg sync.WaitGroup
		for g := range 16 {
			wg.Go(func() {
				for i := range n {
					e := fmt.Sprintf("%s-g%d-i%d-%0200d", tag, g, i, 0)
					idx, err := l.Append(ctx, []byte(e))
					mu.Lock()
					if err != nil {
						failures++
						lastErr = err
						mu.Unlock()
						if stopOnFailure {
							return
						}
						continue
					}
					if old, dup := acked[idx]; dup {
						t.Errorf("index %d acknowledged for %q and %q", idx, old, e)
					}
					acked[idx] = e
					mu.Unlock()
				}
			})
		}
		wg.Wait()
	}
	run("full", 400, true)
	if failures == 0 {
		t.Fatal("the file system never filled")
	}
	t.Logf("%d acknowledged, %d refused on a full disk (%v)", len(acked), failures, lastErr)
	// Tessera formats the cause into its message (%v): no ENOSPC to
	// match by type, so a caller treats any failed append as not taken.
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	before := len(acked)
	failures = 0
	run("freed", 50, false)
	if failures != 0 || len(acked) != before+16*50 {
		t.Fatalf("after freeing space: %d failures (%v), %d new acknowledgements", failures, lastErr, len(acked)-before)
	}
	if err := l.Close(ctx); err != nil {
		t.Fatal(err)
	}

	l = open()
	defer l.Close(ctx)
	size, err := l.Size(ctx)
	if err != nil {
		t.Fatal(err)
	}
	leaves := make([][32]byte, size)
	for i := range size {
		e, err := l.Entry(ctx, i)
		if err != nil {
			t.Fatalf("entry %d: %v", i, err)
		}
		if want, ok := acked[i]; ok && string(e) != want {
			t.Fatalf("entry %d is %q, acknowledged as %q", i, e, want)
		}
		leaves[i] = merkle.LeafHash(e)
	}
	for i := range acked {
		if i >= size {
			t.Fatalf("acknowledged entry %d lost (size %d)", i, size)
		}
	}
	c, err := l.AwaitCheckpoint(ctx, size)
	if err != nil {
		t.Fatal(err)
	}
	if c.Root != merkle.RangeRoot(merkle.CompactRange(leaves[:c.Size])) {
		t.Fatalf("checkpoint %d does not match the entries", c.Size)
	}
}
