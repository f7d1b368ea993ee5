package archive

import (
	"bytes"
	"path/filepath"
	"testing"

	"github.com/edgeseal/edgeseal/store"
)

// TestExportIndexLargestRecord: an export whose record has the format's
// largest size (1 MiB) is indexed, its record read back whole; one byte
// more than any index value holds is refused with an error, not cut.
func TestExportIndexLargestRecord(t *testing.T) {
	ctx := t.Context()
	x, err := store.OpenIndex(ctx, store.IndexOptions{Dir: filepath.Join(t.TempDir(), "search")})
	if err != nil {
		t.Fatal(err)
	}
	defer x.Close()
	e := benchEntry(0, 1)
	e.raw = bytes.Repeat([]byte{'x'}, 1<<20)
	ops, err := entryOps(e)
	if err != nil {
		t.Fatalf("a record of 1 MiB: %v", err)
	}
	if err := x.Write(ctx, ops); err != nil {
		t.Fatalf("a record of 1 MiB: %v", err)
	}
	v, err := x.Get(ctx, ops[0].Key)
	if err != nil || !bytes.Equal(v[1:], e.raw) {
		t.Fatalf("read back %d bytes (%v), want the record's %d", len(v), err, len(e.raw))
	}
	e.raw = make([]byte, store.MaxIndexValueLen)
	if _, err := entryOps(e); err == nil {
		t.Fatal("a record the index cannot hold was accepted")
	}
}
