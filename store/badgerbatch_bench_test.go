package store

import (
	"crypto/sha256"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/dgraph-io/badger/v4"
)

// BenchmarkBadgerWriteBatch: Badger's best durable mode for the journal's
// bytes, the primary baseline of BenchmarkAppend and BenchmarkAppendBatch.
// Writers each write entries at a time through one synced WriteBatch
// (SyncWrites on, the journal's Badger options) and wait for its Flush.
//
//   - entries=100: 1 KiB records (the entries of BenchmarkAppend), 64
//     writers, against BenchmarkAppend/writers=64; encrypted/ seals each
//     value as the journal does (AES-256-GCM, the key as additional data),
//     against BenchmarkAppend/encrypted/writers=64.
//   - encrypted/entries=1000: a 1 KiB record and a 1 KiB payload per entry
//     (the payload under its HMAC-named digest key), sealed, 4 writers, on
//     the agent's memtable size: the bytes of BenchmarkAppendBatch.
//   - writers=1/entries=64: the records of entries=100, one writer, 64 at
//     a time: at most 64 entries in flight, as with the 64 single-entry
//     callers of BenchmarkAppend/writers=64 (entries=100 holds up to 6400:
//     Badger merges the WriteBatches that queue behind a write into one
//     value-log sync, where every journal commit, alone in Badger, pays
//     its own value-log sync and write-ahead-log sync, run together by
//     the patched Badger: third_party/README.md). A reference
//     for the same concurrency, not the target's baseline.
//
// One op is one entry (a record, with its payload where there is one).
func BenchmarkBadgerWriteBatch(b *testing.B) {
	b.Run("entries=100", func(b *testing.B) { benchWriteBatch(b, 64, 100, false, false, 0) })
	b.Run("encrypted/entries=100", func(b *testing.B) { benchWriteBatch(b, 64, 100, true, false, 0) })
	b.Run("encrypted/entries=1000", func(b *testing.B) { benchWriteBatch(b, 4, 1000, true, true, 4<<20) })
	b.Run("writers=1/entries=64", func(b *testing.B) { benchWriteBatch(b, 1, 64, false, false, 0) })
}

func benchWriteBatch(b *testing.B, writers, per int, encrypt, payloads bool, memtable int64) {
	benchMemoryLimit(b)
	o := Options{Dir: b.TempDir(), Logger: testLogger(b), MemTableSize: memtable}
	if err := o.setDefaults(); err != nil {
		b.Fatal(err)
	}
	var key []byte
	if encrypt {
		key = make([]byte, 32)
	}
	c, err := newCrypt(key)
	if err != nil {
		b.Fatal(err)
	}
	db, err := badger.Open(badgerOptions(o, &badgerLogger{l: o.Logger}))
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	var written atomic.Int64
	runBatches(b, writers, per, "records/s", "cpu-us/record", func(start, n int64) error {
		wb := db.NewWriteBatch()
		defer wb.Cancel()
		for i := start; i < start+n; i++ {
			rec, _ := record1K(uint64(i), [32]byte{})
			k := recordKey(uint64(i))
			if err := wb.Set(k, c.seal(k, rec)); err != nil {
				return err
			}
			if payloads {
				p := fmt.Appendf(make([]byte, 0, 1024), "payload %d ", i)
				p = append(p, strings.Repeat("p", 1024-len(p))...)
				pk := c.digestKey(pfxPayload, sha256.Sum256(p))
				if err := wb.Set(pk, c.seal(pk, p)); err != nil {
					return err
				}
			}
		}
		if err := wb.Flush(); err != nil {
			return err
		}
		written.Add(n)
		return nil
	})
	if got := written.Load(); got != int64(b.N) {
		b.Fatalf("wrote %d entries of %d", got, b.N)
	}
}
