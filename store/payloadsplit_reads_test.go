package store

import (
	"bytes"
	"context"
	"fmt"
	"testing"
)

// TestSplitPrefixReadOnce: payloads of one window appended one at a time
// (a commit and a new view each) look their prefix up in Badger at most
// twice (not stored yet, then found once committed), not once a payload;
// a new window's prefix is looked up anew, and after a reopen the first
// payload reads it again. Each payload reads back whole.
func TestSplitPrefixReadOnce(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	open := func() *Journal {
		return openT(t, dir, func(o *Options) { o.EncryptionKey = bytes.Repeat([]byte{3}, 32) })
	}
	j := open()
	var ps []Payload
	appendAll := func(window, from, n int) int64 {
		reads := j.prefixReads.Load()
		for i := from; i < from+n; i++ {
			p, _ := splitFile(window, i)
			if _, err := j.Append(ctx, splitEntry(fmt.Sprint("w", window, "-", i), p)); err != nil {
				t.Fatal(err)
			}
			ps = append(ps, p)
		}
		return j.prefixReads.Load() - reads
	}
	if got := appendAll(0, 0, 20); got > 2 {
		t.Fatalf("20 payloads of a window: %d prefix reads, want at most 2", got)
	}
	if got := appendAll(1, 0, 20); got < 1 || got > 2 {
		t.Fatalf("20 payloads of a new window: %d prefix reads, want 1 or 2", got)
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	j = open()
	defer j.Close()
	if got := appendAll(1, 20, 5); got != 1 {
		t.Fatalf("after a reopen: %d prefix reads, want 1", got)
	}
	for _, p := range ps {
		data, err := j.Payload(p.Digest)
		if err != nil || !bytes.Equal(data, p.Data) {
			t.Fatalf("payload %x: %d bytes, %v", p.Digest[:4], len(data), err)
		}
	}
}
