package store

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/dgraph-io/badger/v4/options"
)

// Open must not read every table: Badger checks a block's checksum when
// the block is read (OnBlockRead), not every table's at open (OnTableRead
// made opening a 1M-record journal read all of it). A flipped bit in a
// record's table block therefore does not fail or slow Open, but reading
// the record and Scrub report it instead of returning wrong bytes.
func TestBitRotFoundOnReadNotAtOpen(t *testing.T) {
	o := Options{Dir: t.TempDir()}
	_ = o.setDefaults()
	if m := badgerOptions(o, &badgerLogger{l: o.Logger}).ChecksumVerificationMode; m != options.OnBlockRead {
		t.Fatalf("checksum mode %v, want OnBlockRead (verified per block read, no scan at open)", m)
	}

	dir := t.TempDir()
	j := openT(t, dir)
	appendN(t, j, 3000, "rot")
	j.Close() // flushes the memtable into a table

	// Flip a byte inside record 1500's table block.
	needle := []byte(`"body":"rot-1500"`)
	ssts, _ := filepath.Glob(filepath.Join(dir, "*.sst"))
	hit := false
	for _, p := range ssts {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if i := bytes.Index(b, needle); i >= 0 {
			b[i+len(needle)-2] ^= 0x01
			if err := os.WriteFile(p, b, 0o644); err != nil {
				t.Fatal(err)
			}
			hit = true
			break
		}
	}
	if !hit {
		t.Fatalf("record 1500 not found in %d tables", len(ssts))
	}

	j = openT(t, dir)
	defer j.Close()
	if j.Size() != 3000 {
		t.Fatalf("size %d", j.Size())
	}
	if _, err := j.Record(2999); err != nil {
		t.Fatalf("intact record: %v", err)
	}
	rec, err := j.Record(1500)
	var ce *CorruptError
	if !errors.As(err, &ce) {
		t.Fatalf("record in a rotten block: %q, %v; want *CorruptError", rec, err)
	}
	err = j.Scrub(context.Background(), nil)
	if !errors.As(err, &ce) {
		t.Fatalf("scrub: %v, want *CorruptError", err)
	}
}
