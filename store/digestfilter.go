package store

import (
	"encoding/binary"
	"hash/maphash"
	"math/bits"
	"sync/atomic"

	"github.com/dgraph-io/badger/v4"
)

// Key filters.
//
// Before it writes an entry the sequencer looks up its idempotency key
// (a key journaled before makes the entry a duplicate) and each of its
// payloads (a digest already stored is not written again), and nearly
// every key and payload is new: those lookups were Badger reads
// (memtables, then each level's bloom filter) on the sequencer goroutine,
// about a tenth of the journal's CPU per batch entry for the payloads
// alone. The sequencer instead asks an in-memory Bloom filter of the
// stored keys first, one for payload keys and one for idempotency keys:
// "absent" is certain and needs no read; "maybe" (a stored key, a purged
// payload, or a false positive) is settled by the Badger read as before,
// so a filter changes what is read, never what is written or answered.
//
// A filter holds stored keys ('p' || digest, 'k' || key; the HMACs when
// encrypted). The payload filter holds the whole-shape key 'p' || digest
// of every payload stored, whole or split ('s' || digest,
// payloadsplit.go): "absent" is then certain for either shape, and on
// "maybe" the sequencer reads the key of the shape it writes. Payload
// keys, and idempotency keys when encrypted, are 32 uniform bytes after
// the prefix, and the probes are taken from the key itself; other keys
// are hashed (hash/maphash, seeded per process). It is filled in two
// ways: the sequencer adds every key it builds into a group (it is the
// only writer of both kinds), from the moment the journal is open; and a
// goroutine started by Open adds every key already stored, with one
// key-only scan per prefix ('p', 's', 'k'). Until that scan is done the filters
// are not trusted and every lookup reads Badger, so Open stays constant
// time and a journal reopened after a restart still deduplicates. Purges
// do not clear bits (a purged digest just takes the read). A filter's
// size is fixed at Open from the journal's size (filterBits); past its
// capacity the false-positive rate, not correctness, degrades, until the
// next Open sizes it again. The payload filter is trusted only once both
// its scans, of whole ('p') and of split ('s') payload keys, are done.

const (
	filterMinBits = 1 << 22 // 512 KiB: about 400,000 keys at 1% false positives
	filterMaxBits = 1 << 25 // 4 MiB: about 3 million keys at 1%; more raise the rate, not the memory
	filterProbes  = 4
)

// digestFilter is a Bloom filter of stored keys of one prefix. add and
// absent are safe for concurrent use (the sequencer and the scan).
type digestFilter struct {
	words  []atomic.Uint64
	mask   uint64       // bit count - 1 (a power of two)
	direct bool         // keys are a prefix and 32 uniform bytes: probe them as they are
	seed   maphash.Seed // hashes the keys when not direct
	ready  atomic.Bool  // the scan of the stored keys is done
}

// filterBits sizes a filter for a journal of size records (about one
// payload and one idempotency key each) and as many again: 12 bits a
// key, a power of two within [filterMinBits, filterMaxBits]. The two
// filters of a journal thus take 1 to 8 MiB.
func filterBits(size uint64) uint64 {
	want := 2 * size * 12
	if want <= filterMinBits {
		return filterMinBits
	}
	if want >= filterMaxBits {
		return filterMaxBits
	}
	return 1 << bits.Len64(want-1)
}

func newDigestFilter(nbits uint64, direct bool) *digestFilter {
	return &digestFilter{words: make([]atomic.Uint64, nbits/64), mask: nbits - 1, direct: direct, seed: maphash.MakeSeed()}
}

// probes returns the bit positions of stored key k.
func (f *digestFilter) probes(k []byte) (p [filterProbes]uint64) {
	if f.direct && len(k) == 1+8*filterProbes {
		for i := range p {
			p[i] = binary.LittleEndian.Uint64(k[1+8*i:]) & f.mask
		}
		return p
	}
	// Double hashing of one 64-bit hash (Kirsch and Mitzenmacher).
	h := maphash.Bytes(f.seed, k)
	h1, h2 := h&0xffffffff, h>>32|1
	for i := range p {
		p[i] = (h1 + uint64(i)*h2) & f.mask
	}
	return p
}

// add records stored key k.
func (f *digestFilter) add(k []byte) {
	for _, b := range f.probes(k) {
		f.words[b/64].Or(1 << (b % 64))
	}
}

// absent reports whether stored key k is certainly not stored: false
// until the scan is done, or when every probe bit is set.
func (f *digestFilter) absent(k []byte) bool {
	if !f.ready.Load() {
		return false
	}
	for _, b := range f.probes(k) {
		if f.words[b/64].Load()&(1<<(b%64)) == 0 {
			return true
		}
	}
	return false
}

// startFilters creates the journal's key filters and starts the scan of
// the keys already stored. The scan stops early on Close (the filters
// then stay untrusted); Close waits for it.
func (j *Journal) startFilters() {
	nbits := filterBits(j.tip.Size)
	j.filter = newDigestFilter(nbits, true)
	j.keyFilter = newDigestFilter(nbits, j.c.sealed())
	j.filterDone = make(chan struct{})
	go func() {
		defer close(j.filterDone)
		for _, s := range []struct {
			pfxs []byte // the stored keys' prefixes, all added as pfxs[0]
			f    *digestFilter
		}{{[]byte{pfxPayload, pfxSplit}, j.filter}, {[]byte{pfxIdemKey}, j.keyFilter}} {
			for _, pfx := range s.pfxs {
				done, err := j.scanKeys(pfx, s.pfxs[0], s.f)
				if err != nil {
					if j.failed.Load() == nil && !j.closing.Load() {
						j.log.Warn("journal: key filter scan failed; keys are looked up in the journal", "prefix", string(pfx), "err", err)
					}
					return
				}
				if !done {
					return // closed
				}
			}
			s.f.ready.Store(true)
		}
	}()
}

// scanKeys adds every stored key with prefix pfx to f, under prefix as
// instead (renamePrefix: a split payload's key as its whole-shape key);
// false when the journal was closed first.
func (j *Journal) scanKeys(pfx, as byte, f *digestFilter) (bool, error) {
	if err := j.enter(); err != nil {
		return false, nil
	}
	defer j.leave()
	done := true
	var buf []byte
	err := j.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{pfx}})
		defer it.Close()
		n := 0
		for it.Rewind(); it.Valid(); it.Next() {
			if n++; n%4096 == 1 {
				select {
				case <-j.quit:
					done = false
					return nil
				default:
				}
			}
			k := it.Item().Key()
			if pfx != as {
				// Into a reused buffer: add keeps no reference.
				buf = append(buf[:0], k...)
				buf[0] = as
				k = buf
			}
			f.add(k)
		}
		return nil
	})
	return done, err
}
