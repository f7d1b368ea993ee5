package store

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/dgraph-io/badger/v4/options"
	"github.com/dgraph-io/badger/v4/table"
	"github.com/dgraph-io/badger/v4/y"
)

// TestTableIndexBuiltToSize builds Badger tables through the patched
// index builder (sized to the table instead of a fixed 3 MiB;
// third_party/README.md), from a few keys to thousands of blocks with
// long keys, and reads every key back through the index: its count, a
// seek to each key, and a full scan in order.
func TestTableIndexBuiltToSize(t *testing.T) {
	for _, tc := range []struct {
		keys, keyLen, valLen int
	}{
		{1, 8, 8},
		{100, 16, 100},
		{20000, 32, 1000}, // ~5000 blocks of 4 KiB
		{3000, 3000, 10},  // a block for each key or two: base keys outweigh the estimate's fixed part
	} {
		t.Run(fmt.Sprintf("keys=%d/len=%d", tc.keys, tc.keyLen), func(t *testing.T) {
			opts := &table.Options{BlockSize: 4 << 10, BloomFalsePositive: 0.01, TableSize: 2 << 20,
				Compression: options.None, ChkMode: options.OnBlockRead}
			b := table.NewTableBuilder(*opts)
			defer b.Close()
			key := func(i int) []byte {
				k := fmt.Appendf(nil, "k%09d", i)
				k = append(k, bytes.Repeat([]byte{'x'}, max(0, tc.keyLen-len(k)))...)
				return y.KeyWithTs(k, 1)
			}
			val := bytes.Repeat([]byte{'v'}, tc.valLen)
			for i := range tc.keys {
				b.Add(key(i), y.ValueStruct{Value: val}, 0)
			}
			tbl, err := table.OpenInMemoryTable(b.Finish(), 1, opts)
			if err != nil {
				t.Fatal(err)
			}
			defer tbl.DecrRef()
			if got := int(tbl.KeyCount()); got != tc.keys {
				t.Fatalf("index counts %d keys, want %d", got, tc.keys)
			}
			it := tbl.NewIterator(0)
			defer it.Close()
			for i := 0; i < tc.keys; i += max(1, tc.keys/500) {
				it.Seek(key(i))
				if !it.Valid() || !bytes.Equal(it.Key(), key(i)) {
					t.Fatalf("seek to key %d: not found", i)
				}
			}
			n := 0
			for it.Rewind(); it.Valid(); it.Next() {
				if !bytes.Equal(it.Key(), key(n)) || !bytes.Equal(it.Value().Value, val) {
					t.Fatalf("scan: entry %d is %q", n, it.Key())
				}
				n++
			}
			if n != tc.keys {
				t.Fatalf("scan read %d keys, want %d", n, tc.keys)
			}
		})
	}
}
