package store

import (
	"encoding/binary"
	"math/bits"
	"sync/atomic"

	"github.com/dgraph-io/badger/v4"
)

// Payload filter.
//
// Every payload an entry carries is looked up before it is written (a
// digest already stored is not written again), and nearly every payload
// is new: that lookup was a Badger read (memtables, then each level's
// bloom filter) on the sequencer goroutine for every payload, about a
// tenth of the journal's CPU per batch entry. The sequencer instead asks
// an in-memory Bloom filter of the stored payload keys first: "absent"
// is certain and needs no read; "maybe" (a stored payload, a purged one,
// or a false positive) is settled by the Badger read as before, so the
// filter changes what is read, never what is written.
//
// The filter holds the stored key of every payload ('p' || digest, or
// its HMAC when encrypted: 32 uniform bytes after the prefix, so the
// probes are taken from the key itself, no hashing). It is filled in two
// ways: the sequencer adds every payload key it builds into a group (the
// only writer of payload keys), from the moment the journal is open; and
// a goroutine started by Open adds every payload key already stored,
// with one key-only scan. Until that scan is done the filter is not
// trusted and every lookup reads Badger, so Open stays constant time and
// a journal reopened after a restart still deduplicates. Purges do not
// clear bits (a purged digest just takes the read). The filter's size is
// fixed at Open from the journal's size (filterBits); past its capacity
// the false-positive rate, not correctness, degrades, until the next
// Open sizes it again.

const (
	filterMinBits = 1 << 23 // 1 MiB: about 800,000 payloads at 1% false positives
	filterMaxBits = 1 << 27 // 16 MiB
	filterProbes  = 4
)

// digestFilter is a Bloom filter of stored payload keys. add and
// mayContain are safe for concurrent use (the sequencer and the scan).
type digestFilter struct {
	words []atomic.Uint64
	mask  uint64      // bit count - 1 (a power of two)
	ready atomic.Bool // the scan of the stored keys is done
	done  chan struct{}
}

// filterBits sizes the filter for a journal of size records (about one
// payload each) and as many again: 12 bits a payload, a power of two
// within [filterMinBits, filterMaxBits].
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

func newDigestFilter(nbits uint64) *digestFilter {
	return &digestFilter{words: make([]atomic.Uint64, nbits/64), mask: nbits - 1, done: make(chan struct{})}
}

// probe returns the i-th bit position of stored key k (1 + 32 bytes).
func (f *digestFilter) probe(k []byte, i int) uint64 {
	return binary.LittleEndian.Uint64(k[1+8*i:]) & f.mask
}

// add records stored payload key k.
func (f *digestFilter) add(k []byte) {
	if len(k) < 1+8*filterProbes {
		return // not a payload key; the filter never says "absent" of it (see absent)
	}
	for i := range filterProbes {
		b := f.probe(k, i)
		f.words[b/64].Or(1 << (b % 64))
	}
}

// absent reports whether stored payload key k is certainly not stored:
// false until the scan is done, or when any probe bit is set.
func (f *digestFilter) absent(k []byte) bool {
	if !f.ready.Load() || len(k) < 1+8*filterProbes {
		return false
	}
	for i := range filterProbes {
		b := f.probe(k, i)
		if f.words[b/64].Load()&(1<<(b%64)) == 0 {
			return true
		}
	}
	return false
}

// startFilter creates the journal's payload filter and starts the scan
// of the payload keys already stored. The scan stops early on Close (the
// filter then stays untrusted) and Close waits for it.
func (j *Journal) startFilter() {
	f := newDigestFilter(filterBits(j.tip.Size))
	j.filter = f
	go func() {
		defer close(f.done)
		n, err := j.scanPayloadKeys(f)
		if err != nil {
			if j.failed.Load() == nil && !j.closing.Load() {
				j.log.Warn("journal: payload filter scan failed; payloads are looked up in the journal", "err", err)
			}
			return
		}
		if n < 0 {
			return // closed
		}
		f.ready.Store(true)
	}()
}

// scanPayloadKeys adds every stored payload key to f; -1 when the journal
// was closed first.
func (j *Journal) scanPayloadKeys(f *digestFilter) (int64, error) {
	if err := j.enter(); err != nil {
		return -1, nil
	}
	defer j.leave()
	var n int64
	err := j.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{pfxPayload}})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			if n%4096 == 0 {
				select {
				case <-j.quit:
					n = -1
					return nil
				default:
				}
			}
			f.add(it.Item().Key())
			n++
		}
		return nil
	})
	return n, err
}
