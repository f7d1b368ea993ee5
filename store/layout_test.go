package store

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/dgraph-io/badger/v4"
	"golang.org/x/mod/sumdb/tlog"
)

// untar extracts a testdata journal into a new directory.
func untar(t *testing.T, name string) string {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return dir
		}
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, filepath.Clean("/"+h.Name))
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(p, 0o700); err != nil {
				t.Fatal(err)
			}
		case tar.TypeReg:
			b, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, b, 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// A journal written before packed hashes (a key per stored hash) opens,
// keeps its root, keys, payloads and checkpoint, takes appends with
// packed hashes, and proves inclusion and consistency across the
// boundary, before and after a reopen.
func TestOpenJournalWrittenBeforePackedHashes(t *testing.T) {
	ctx := context.Background()
	dir := untar(t, "journal-v2-sealed.tar.gz")
	key := make([]byte, 32)
	for i := range key {
		key[i] = byte(i)
	}
	open := func() *Journal { return openT(t, dir, func(o *Options) { o.EncryptionKey = key }) }
	j := open()
	const oldSize = 37
	want, _ := hex.DecodeString("d5a78a35669f72cebecc202f8915171cb032404d26b894d70cce878260c017c6")
	if j.Size() != oldSize {
		t.Fatalf("size %d, want %d", j.Size(), oldSize)
	}
	if j.packedFrom != oldSize {
		t.Fatalf("packed from %d, want %d", j.packedFrom, oldSize)
	}
	if root, err := j.Root(oldSize); err != nil || root != [32]byte(want) {
		t.Fatalf("root of the old journal: %x %v", root, err)
	}
	if err := j.Scrub(ctx, checkEmbedded); err != nil {
		t.Fatal(err)
	}
	if seq, err := j.Lookup([]byte("key-12")); err != nil || seq != 12 {
		t.Fatalf("old idempotency key: %d %v", seq, err)
	}
	if p, err := j.Payload(sha256.Sum256([]byte("payload 5"))); err != nil || string(p) != "payload 5" {
		t.Fatalf("old payload: %q %v", p, err)
	}
	if size, data, err := j.LastCheckpoint(); err != nil || size != 21 || string(data) != "checkpoint at 21" {
		t.Fatalf("old checkpoint: %d %q %v", size, data, err)
	}
	// A repeat of an old key is refused; new records pack their hashes.
	if _, err := j.Append(ctx, Entry{Build: mustNotBuild(t), Key: []byte("key-3")}); !errors.As(err, new(*DuplicateError)) {
		t.Fatalf("old key repeated: %v", err)
	}
	appendN(t, j, 100, "new")
	checkProofs(t, j)
	j.Close()

	j = open()
	defer j.Close()
	if j.packedFrom != oldSize || j.Size() != oldSize+100 {
		t.Fatalf("reopen: packed from %d, size %d", j.packedFrom, j.Size())
	}
	if err := j.Scrub(ctx, checkEmbedded); err != nil {
		t.Fatal(err)
	}
	checkProofs(t, j)
	// Every hash of a new record is packed: no key per hash was written.
	err := j.db.View(func(txn *badger.Txn) error {
		for seq := uint64(oldSize); seq < j.Size(); seq++ {
			if _, err := txn.Get(hashKey(tlog.StoredHashIndex(0, int64(seq)))); err == nil {
				return fmt.Errorf("record %d has a leaf hash key", seq)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// checkProofs checks every root against an independent computation and
// inclusion and consistency proofs between sizes with tlog.
func checkProofs(t *testing.T, j *Journal) {
	t.Helper()
	n := j.Size()
	var leaves [][32]byte
	for seq := range n {
		rec, err := j.Record(seq)
		if err != nil {
			t.Fatal(err)
		}
		leaves = append(leaves, leafHash(rec))
	}
	for _, size := range []uint64{1, 2, 21, 36, 37, 38, 39, 64, 100, n} {
		if size > n {
			continue
		}
		root, err := j.Root(size)
		if err != nil || root != mth(leaves[:size]) {
			t.Fatalf("root %d: %x %v", size, root, err)
		}
		for _, seq := range []uint64{0, size / 2, size - 1} {
			p, err := j.InclusionProof(seq, size)
			if err != nil {
				t.Fatal(err)
			}
			if err := tlog.CheckRecord(toProof(p), int64(size), root, int64(seq), leaves[seq]); err != nil {
				t.Fatalf("inclusion of %d in %d: %v", seq, size, err)
			}
		}
		for _, old := range []uint64{1, 21, 37, 38} {
			if old >= size {
				continue
			}
			p, err := j.ConsistencyProof(old, size)
			if err != nil {
				t.Fatal(err)
			}
			if err := tlog.CheckTree(toProof(p), int64(size), root, int64(old), mth(leaves[:old])); err != nil {
				t.Fatalf("consistency %d..%d: %v", old, size, err)
			}
		}
		rng, err := j.RangeHashes(size)
		if err != nil || FoldRange(rng) != root {
			t.Fatalf("range hashes %d: %v", size, err)
		}
	}
}

func toProof(p [][32]byte) []tlog.Hash {
	out := make([]tlog.Hash, len(p))
	for i, h := range p {
		out[i] = h
	}
	return out
}

// A new journal packs from size 0: an append writes its record and, for
// an odd seq, one interior key; never a key per hash.
func TestPackedHashesKeysPerAppend(t *testing.T) {
	j := openT(t, t.TempDir())
	defer j.Close()
	appendN(t, j, 16, "p")
	counts := map[byte]int{}
	err := j.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			counts[it.Item().Key()[0]]++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if counts[pfxRecord] != 16 || counts[pfxInterior] != 8 || counts[pfxHash] != 0 {
		t.Fatalf("keys after 16 appends: %d records, %d interior, %d hash keys", counts[pfxRecord], counts[pfxInterior], counts[pfxHash])
	}
	checkProofs(t, j)
}

// A stored interior hash that is altered is found by Scrub.
func TestScrubFindsAlteredInteriorHash(t *testing.T) {
	dir := t.TempDir()
	j := openT(t, dir)
	appendN(t, j, 8, "s")
	j.Close()
	o := Options{Dir: dir}
	_ = o.setDefaults()
	db, err := badger.Open(badgerOptions(o, &badgerLogger{l: testLogger(t)}))
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(txn *badger.Txn) error {
		return txn.Set(interiorKey(3), make([]byte, 64)) // levels 1 and 2 of record 3
	}); err != nil {
		t.Fatal(err)
	}
	db.Close()
	j = openT(t, dir)
	defer j.Close()
	var ce *CorruptError
	if err := j.Scrub(context.Background(), nil); !errors.As(err, &ce) || ce.Seq != 2 {
		t.Fatalf("scrub of an altered interior hash: %v, want *CorruptError at records 2..3", err)
	}
}
