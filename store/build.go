package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/dgraph-io/badger/v4/skl"
	"golang.org/x/mod/sumdb/tlog"
)

// kv is one write of a group, its value in the clear (send seals it).
type kv struct {
	key, val []byte
}

// group is the work of one Badger transaction.
type group struct {
	reqs  []*request
	kvs   []kv
	bytes int64 // Badger's accounting, for its transaction limit
	raw   int64 // key and value bytes written
	count int64
	end   meta
}

// estimate mirrors Badger's per-entry transaction accounting; extra is
// what sealing adds to a value.
func estimate(k kv, extra int64) int64 {
	n := int64(len(k.key)) + 10
	if v := int64(len(k.val)) + extra; v < valueThreshold {
		return n + v + 2
	}
	return n + 14
}

func (j *Journal) limits() (bytes, count int64) {
	maxBytes := j.opts.MemTableSize * 15 / 100
	return maxBytes * 9 / 10, maxBytes / int64(skl.MaxNodeSize) * 9 / 10
}

// builder turns requests into groups: the records are built, hashed and
// sealed as the requests are taken, and the groups cut at Badger's
// transaction limits (a request never straddles two). The last group
// stays open for more requests until the pipeline can take it.
type builder struct {
	full      []*group // closed groups, in order
	cur       *group   // the open group (may be empty)
	limBytes  int64
	limCount  int64
	metaBytes int64 // the metadata's share of a transaction
	extra     int64 // what sealing adds to a value
}

func (j *Journal) newBuilder() *builder {
	b := &builder{cur: &group{}}
	b.limBytes, b.limCount = j.limits()
	b.extra = int64(j.c.overhead())
	b.metaBytes = estimate(kv{key: metaKey, val: make([]byte, metaLen)}, b.extra) + 12
	return b
}

// empty reports whether the builder holds nothing to send.
func (b *builder) empty() bool { return len(b.full) == 0 && len(b.cur.reqs) == 0 }

// maxScratch is the most writes add's scratch slice keeps between
// requests (a 4 MiB batch of 1 KiB exports needs about 12,000).
const maxScratch = 1 << 14

// add builds request r into the open group (or a new one). A request
// that writes nothing is answered at once, unless it holds a duplicate
// of a key whose record is not yet synced; one too large for a single
// transaction is refused (*TooLargeError, Fit the entries before the
// one that went over) and consumes no sequence number: building stops at
// that entry, so a refused batch costs at most one commit's worth of
// builds. The writes are laid out in the sequencer's scratch slice, kept
// between requests.
func (j *Journal) add(b *builder, r *request) {
	v := j.view
	seq, last := j.tip.Size, j.tip.LastLeaf
	// pushFrontier rewrites frontier's tail in place: the undo needs a
	// copy (in a slice kept between requests; at most 64 nodes).
	j.savedFrontier = append(j.savedFrontier[:0], j.frontier...)
	kvs := j.scratch[:0]
	added, addedKeys := j.addedDigests[:0], j.addedKeys[:0]
	addedPrefixes := j.addedPrefixes[:0]
	defer func() {
		clear(kvs) // the group holds its own copy
		clear(addedKeys)
		if cap(kvs) > maxScratch {
			kvs, added, addedKeys, addedPrefixes = nil, nil, nil, nil // not held past a huge request
		}
		j.scratch, j.addedDigests, j.addedKeys = kvs[:0], added[:0], addedKeys[:0]
		j.addedPrefixes = addedPrefixes[:0]
	}()
	var rb, rc, raw int64 // the request's commit bytes, count, raw bytes
	// dependent: holds a duplicate of a key whose record is not yet
	// synced (built in this pass or in a group still in flight).
	dependent := false
	for i, e := range r.entries {
		var sk []byte // e.Key's stored key
		if len(e.Key) > 0 {
			sk = j.c.idemKey(e.Key)
			orig, recent, err := j.keySeq(e.Key, sk)
			if err == nil {
				r.errs[i] = &DuplicateError{Key: bytes.Clone(e.Key), Seq: orig}
				dependent = dependent || recent
				continue
			}
			if !errors.Is(err, ErrNotFound) {
				r.errs[i] = fmt.Errorf("idempotency key: %w", err)
				continue
			}
		}
		rec, err := callBuild(e.Build, seq, last)
		if err != nil {
			r.errs[i] = &BuildError{Err: err}
			continue
		}
		leaf := tlog.RecordHash(rec)
		hs, err := tlog.StoredHashesForRecordHash(int64(seq), leaf, seqReader{j})
		if err != nil {
			r.errs[i] = fmt.Errorf("tree: %w", err)
			continue
		}
		from := len(kvs)
		kvs = append(kvs, kv{key: recordKey(seq), val: rec})
		kvs = appendStoredKVs(kvs, seq, hs)
		j.frontier = pushFrontier(j.frontier, int64(seq), hs)
		for _, p := range e.Payloads {
			// The payload filter holds the whole-shape key of every
			// payload stored, whole or split (digestfilter.go).
			pk := j.c.digestKey(pfxPayload, p.Digest)
			if j.payloadStored(p, pk) {
				continue
			}
			j.filter.add(pk)
			// A tombstone of these bytes purged before may stay: a
			// tombstone only counts where the payload is absent (Payload,
			// PurgePayload).
			v.digests[p.Digest] = true
			added = append(added, p.Digest)
			var id [32]byte
			var wrote bool
			kvs, id, wrote = j.appendPayloadKVs(kvs, p, pk)
			if wrote {
				addedPrefixes = append(addedPrefixes, id)
			}
		}
		if len(e.Key) > 0 {
			v.keys[string(e.Key)] = seq
			addedKeys = append(addedKeys, string(e.Key))
			j.keyFilter.add(sk)
			kvs = append(kvs, kv{key: sk, val: binary.BigEndian.AppendUint64(nil, seq)})
		}
		for _, k := range kvs[from:] {
			rb += estimate(k, b.extra)
			rc++
			raw += int64(len(k.key) + len(k.val))
		}
		if rb+b.metaBytes > b.limBytes || rc+1 > b.limCount {
			// Cannot be committed atomically: undo and refuse.
			j.frontier = append(j.frontier[:0], j.savedFrontier...)
			for _, d := range added {
				delete(v.digests, d)
			}
			for _, id := range addedPrefixes {
				delete(v.prefixes, id)
			}
			for _, k := range addedKeys {
				delete(v.keys, k)
			}
			clear(r.res)
			r.err = fmt.Errorf("store: append: %w", &TooLargeError{Size: rb, Limit: b.limBytes, Fit: i})
			close(r.done)
			return
		}
		r.res[i] = Appended{Seq: seq, Leaf: leaf, Record: rec}
		last = leaf
		seq++
	}
	// A request that writes nothing is answered at once, unless it holds
	// a duplicate of a key whose record is not synced yet: it then joins
	// the open group (which holds or follows the original) and is
	// answered after that commit, so its *DuplicateError never names an
	// uncommitted seq.
	if len(kvs) == 0 && !dependent {
		close(r.done)
		return
	}
	if len(b.cur.reqs) > 0 && (b.cur.bytes+rb+b.metaBytes > b.limBytes || b.cur.count+rc+1 > b.limCount) {
		b.full = append(b.full, b.cur)
		b.cur = &group{}
	}
	g := b.cur
	g.reqs = append(g.reqs, r)
	g.kvs = append(g.kvs, kvs...)
	g.bytes += rb
	g.raw += raw
	g.count += rc
	j.tip = meta{Size: seq, LastLeaf: last}
	g.end = j.tip
}
