package store

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"math/bits"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dgraph-io/badger/v4"
)

// Open reads the metadata, the last record and the compact range: the
// number of keys depends on popcount(size), never on size.
func TestOpenReadsMetaOnly(t *testing.T) {
	for _, n := range []int{0, 1, 6, 1023, 4096} {
		dir := t.TempDir()
		j := openT(t, dir)
		appendN(t, j, n, "o")
		j.Close()
		j = openT(t, dir)
		want := 3 + bits.OnesCount(uint(n)) // meta + layout + probe beyond size + range
		if n > 0 {
			want += 2 // last record + its leaf hash
		}
		if j.openReads != want {
			t.Errorf("size %d: open read %d keys, want %d", n, j.openReads, want)
		}
		j.Close()
	}
}

// Corrupting a record behind the journal's back does not slow or fail
// Open (it does not rescan) but Scrub finds it.
func TestScrubFindsCorruptionOpenDoesNot(t *testing.T) {
	dir := t.TempDir()
	j := openT(t, dir)
	appendN(t, j, 50, "s")
	j.Close()

	o := Options{Dir: dir}
	_ = o.setDefaults()
	db, err := badger.Open(badgerOptions(o, &badgerLogger{l: testLogger(t)}))
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(txn *badger.Txn) error {
		return txn.Set(recordKey(17), []byte(`{"seq":17,"tampered":true}`))
	}); err != nil {
		t.Fatal(err)
	}
	db.Close()

	j = openT(t, dir)
	defer j.Close()
	err = j.Scrub(context.Background(), nil)
	var ce *CorruptError
	// Record 17's leaf is not stored (packed hashes): the level-1 hash
	// over records 16 and 17 no longer recomputes.
	if !errors.As(err, &ce) || ce.Seq != 16 || !strings.Contains(ce.What, "records 16..17") {
		t.Fatalf("scrub of tampered record: %v, want *CorruptError naming records 16..17", err)
	}
}

func TestOpenRejectsBrokenMeta(t *testing.T) {
	dir := t.TempDir()
	j := openT(t, dir)
	appendN(t, j, 5, "m")
	j.Close()
	o := Options{Dir: dir}
	_ = o.setDefaults()
	db, err := badger.Open(badgerOptions(o, &badgerLogger{l: testLogger(t)}))
	if err != nil {
		t.Fatal(err)
	}
	// A meta claiming one more record than stored.
	bad := meta{Size: 6, LastLeaf: [32]byte{1}}.encode()
	if err := db.Update(func(txn *badger.Txn) error { return txn.Set(metaKey, bad) }); err != nil {
		t.Fatal(err)
	}
	db.Close()
	_, err = Open(context.Background(), Options{Dir: dir})
	var ce *CorruptError
	if !errors.As(err, &ce) {
		t.Fatalf("open with lying meta: %v, want *CorruptError", err)
	}
}

const marker = "PLAINTEXT-MARKER-7f3a9c"

func writeMarker(t *testing.T, dir string, key []byte) {
	t.Helper()
	j := openT(t, dir, func(o *Options) { o.EncryptionKey = key })
	data := []byte(marker + " payload")
	if _, err := j.Append(context.Background(), Entry{
		Build:    build(marker),
		Payloads: []Payload{{Digest: sha256Sum(data), Data: data}},
	}); err != nil {
		t.Fatal(err)
	}
	appendN(t, j, 20, marker)
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
}

func dirContains(t *testing.T, dir, s string) bool {
	t.Helper()
	found := false
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if bytes.Contains(b, []byte(s)) {
			found = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return found
}

func TestEncryptionAtRest(t *testing.T) {
	key := make([]byte, 32)
	rand.Read(key)

	// Control: without a key the marker is on disk, so the check can fail.
	plain := t.TempDir()
	writeMarker(t, plain, nil)
	if !dirContains(t, plain, marker) {
		t.Fatal("control: marker not found in an unencrypted journal")
	}

	dir := t.TempDir()
	writeMarker(t, dir, key)
	if dirContains(t, dir, marker) {
		t.Fatal("plaintext marker found in an encrypted journal")
	}

	wrong := make([]byte, 32)
	rand.Read(wrong)
	for name, k := range map[string][]byte{"wrong key": wrong, "no key": nil} {
		_, err := Open(context.Background(), Options{Dir: dir, EncryptionKey: k})
		if !errors.Is(err, ErrEncryptionKey) {
			t.Fatalf("%s: %v, want ErrEncryptionKey", name, err)
		}
	}
	if _, err := Open(context.Background(), Options{Dir: plain, EncryptionKey: key}); !errors.Is(err, ErrEncryptionKey) {
		t.Fatalf("key on a plain journal: %v, want ErrEncryptionKey", err)
	}
	if _, err := Open(context.Background(), Options{Dir: t.TempDir(), EncryptionKey: key[:16]}); err == nil {
		t.Fatal("16-byte key accepted")
	}

	j := openT(t, dir, func(o *Options) { o.EncryptionKey = key })
	defer j.Close()
	if j.Size() != 21 {
		t.Fatalf("size %d after reopen", j.Size())
	}
	rec, err := j.Record(0)
	if err != nil || !bytes.Contains(rec, []byte(marker)) {
		t.Fatalf("record 0: %q %v", rec, err)
	}
	if err := j.Scrub(context.Background(), checkEmbedded); err != nil {
		t.Fatal(err)
	}
}

// A crash between creating a value-log file and growing it leaves an
// empty *.vlog that badger itself refuses to open.
func TestOpenRepairsEmptyValueLog(t *testing.T) {
	dir := t.TempDir()
	j := openT(t, dir)
	appendN(t, j, 5, "v")
	j.Close()
	ents, _ := filepath.Glob(filepath.Join(dir, "*.vlog"))
	hi := 0
	for _, e := range ents {
		var n int
		fmt.Sscanf(filepath.Base(e), "%d.vlog", &n)
		hi = max(hi, n)
	}
	empty := filepath.Join(dir, fmt.Sprintf("%06d.vlog", hi+1))
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	j = openT(t, dir)
	defer j.Close()
	if j.Size() != 5 {
		t.Fatalf("size %d after repair", j.Size())
	}
	if err := j.Scrub(context.Background(), checkEmbedded); err != nil {
		t.Fatal(err)
	}
}

// A crash between creating a memtable log file and growing it (at open or
// when the memtable fills) leaves an empty *.mem that badger itself
// refuses to open ("while opening memtables ... Create a new file").
func TestOpenRepairsEmptyMemtableLog(t *testing.T) {
	dir := t.TempDir()
	j := openT(t, dir)
	appendN(t, j, 5, "m")
	j.Close()
	if err := os.WriteFile(filepath.Join(dir, "00099.mem"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	j = openT(t, dir)
	if j.Size() != 5 {
		t.Fatalf("size %d after repair", j.Size())
	}
	appendN(t, j, 5, "m2")
	j.Close()
	j = openT(t, dir)
	defer j.Close()
	if j.Size() != 10 {
		t.Fatalf("size %d after reopen", j.Size())
	}
	if err := j.Scrub(context.Background(), checkEmbedded); err != nil {
		t.Fatal(err)
	}
}
