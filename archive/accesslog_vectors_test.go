package archive_test

import (
	"encoding/json"
	"os"
	"testing"

	"github.com/edgeseal/edgeseal/archive"
	"github.com/edgeseal/edgeseal/bundle/merkle"
	"github.com/edgeseal/edgeseal/bundle/wire"
)

// TestAccessEntryVectors checks testdata/access-entry-v1.json and
// decrypt-entry-v1.json: every
// record parses and is what RecordAccess writes for it (canonical JSON),
// its leaf hash is as stated, the root of the three leaves is as stated,
// and every reject is refused.
func TestAccessEntryVectors(t *testing.T) {
	for _, f := range []string{"testdata/access-entry-v1.json", "testdata/decrypt-entry-v1.json"} {
		t.Run(f, func(t *testing.T) { accessVectors(t, f) })
	}
}

// accessVectors checks one vector file of access log entries (access or
// decrypt entries).
func accessVectors(t *testing.T, file string) {
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var v struct {
		Entries []struct{ Record, Leaf string }
		Root    string
		Reject  []string
	}
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	var leaves [][32]byte
	for i, e := range v.Entries {
		if _, err := archive.ParseAccessEntry([]byte(e.Record)); err != nil {
			t.Fatalf("entry %d: %v", i, err)
		}
		leaf := merkle.LeafHash([]byte(e.Record))
		if wire.FormatHash(leaf) != e.Leaf {
			t.Fatalf("entry %d: leaf %s, vector says %s", i, wire.FormatHash(leaf), e.Leaf)
		}
		leaves = append(leaves, leaf)
	}
	if root := wire.FormatHash(merkle.RangeRoot(merkle.CompactRange(leaves))); root != v.Root {
		t.Fatalf("root %s, vector says %s", root, v.Root)
	}
	for i, r := range v.Reject {
		if _, err := archive.ParseAccessEntry([]byte(r)); err == nil {
			t.Errorf("reject %d accepted", i)
		}
	}
}
