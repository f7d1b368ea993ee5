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

// add builds request r into the open group (or a new one). A request
// that writes nothing is answered at once, unless it holds a duplicate
// of a key whose record is not yet synced; one too large for a single
// transaction is refused (*TooLargeError) and consumes no sequence
// number.
func (j *Journal) add(b *builder, r *request) {
	v := j.view
	seq, last := j.tip.Size, j.tip.LastLeaf
	saveFrontier := append([]node(nil), j.frontier...)
	var kvs []kv
	var added, addedPrefixes [][32]byte
	var addedKeys []string
	// dependent: holds a duplicate of a key whose record is not yet
	// synced (built in this pass or in a group still in flight).
	dependent := false
	for i, e := range r.entries {
		if len(e.Key) > 0 {
			orig, recent, err := j.keySeq(e.Key)
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
		kvs = append(kvs, kv{key: recordKey(seq), val: rec})
		kvs = append(kvs, storedKVs(seq, hs)...)
		j.frontier = pushFrontier(j.frontier, int64(seq), hs)
		for _, p := range e.Payloads {
			if j.payloadStored(p) {
				continue
			}
			// A tombstone of these bytes purged before may stay: a
			// tombstone only counts where the payload is absent (Payload,
			// PurgePayload).
			v.digests[p.Digest] = true
			added = append(added, p.Digest)
			pkvs, id, wrote := j.payloadKV(p)
			if wrote {
				addedPrefixes = append(addedPrefixes, id)
			}
			kvs = append(kvs, pkvs...)
		}
		if len(e.Key) > 0 {
			v.keys[string(e.Key)] = seq
			addedKeys = append(addedKeys, string(e.Key))
			kvs = append(kvs, kv{key: j.c.idemKey(e.Key), val: binary.BigEndian.AppendUint64(nil, seq)})
		}
		r.res[i] = Appended{Seq: seq, Leaf: leaf, Record: rec}
		last = leaf
		seq++
	}
	var rb, rc, raw int64
	for _, k := range kvs {
		rb += estimate(k, b.extra)
		rc++
		raw += int64(len(k.key) + len(k.val))
	}
	if rb+b.metaBytes > b.limBytes || rc+1 > b.limCount {
		// Cannot be committed atomically: undo and refuse.
		j.frontier = saveFrontier
		for _, d := range added {
			delete(v.digests, d)
		}
		for _, id := range addedPrefixes {
			delete(v.prefixes, id)
		}
		for _, k := range addedKeys {
			delete(v.keys, k)
		}
		r.err = fmt.Errorf("store: append: %w", &TooLargeError{Size: rb, Limit: b.limBytes})
		close(r.done)
		return
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
