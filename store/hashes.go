package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"

	"github.com/dgraph-io/badger/v4"
	"golang.org/x/mod/sumdb/tlog"
)

// Stored Merkle hashes.
//
// Every hash of the tree is stored once, but not one key each. Record
// seq's leaf hash is SHA-256(0x00 || record) and is not stored: it is
// recomputed from the record, which is read and (when sealed)
// authenticated anyway. The interior hashes a record completes (levels 1
// to t, t the number of trailing one bits of seq: none for an even seq)
// are stored together under one key, 'i' || be64(seq), as t hashes of 32
// bytes, level 1 first. An append thus writes its record and, every
// other time, one small value, instead of a key per stored hash (the
// journal's format before packed hashes, which cost a third of its CPU
// per append: each key sealed, logged, put in the memtable and
// compacted).
//
// Journals written before keep their 'h' || be64(index) keys: the layout
// key 'l' holds the size from which hashes are packed (be64, sealed like
// any value). Open writes it once: 0 in a new journal, the current size
// in one written by an earlier version (so nothing is rewritten and Open
// stays constant time); a hash of a subtree completed by a record below
// that size is read from its 'h' key, any other from the record and its
// 'i' key.
//
// Nothing is lost for verification: Scrub recomputes every stored
// interior hash from the records, so a changed record fails the level-1
// hash above it, and the last record is checked against the metadata's
// last leaf.

const (
	pfxInterior = 'i'
	pfxLayout   = 'l'
)

var layoutKey = []byte{pfxLayout}

func interiorKey(seq uint64) []byte { return u64Key(pfxInterior, seq) }

// interiorCount is the number of interior hashes record seq completes.
func interiorCount(seq uint64) int { return bits.TrailingZeros64(^seq) }

// readLayout reads the layout key in txn; ok is false when it is absent
// (a new journal, or one written by an earlier version).
func (j *Journal) readLayout(txn *badger.Txn) (from uint64, ok bool, err error) {
	j.openReads++
	v, err := j.c.get(txn, layoutKey)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, err
	}
	if len(v) != 8 {
		return 0, false, &CorruptError{What: fmt.Sprintf("layout value is %d bytes, want 8", len(v))}
	}
	return binary.BigEndian.Uint64(v), true, nil
}

// writeLayout writes the layout key once, at the first open by this
// version: hashes are packed from size on (0 in a journal without
// records; its size in one written with a key per hash).
func (j *Journal) writeLayout(size uint64) error {
	v := j.c.seal(layoutKey, binary.BigEndian.AppendUint64(nil, size))
	if err := j.db.Update(func(txn *badger.Txn) error { return txn.Set(layoutKey, v) }); err != nil {
		return err
	}
	if size > 0 {
		j.log.Info("journal: stored hashes are packed from now on", "from_size", size)
	}
	return nil
}

// hashReader returns the tlog.HashReader of txn's snapshot.
func (j *Journal) hashReader(txn *badger.Txn) txnReader {
	return txnReader{txn: txn, c: j.c, packedFrom: j.packedFrom}
}

// txnReader is a tlog.HashReader over one Badger read transaction.
type txnReader struct {
	txn        *badger.Txn
	c          *crypt
	packedFrom uint64 // hashes of subtrees completed from this seq on are packed
	reads      *int   // counts keys read, may be nil
}

func (r txnReader) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	var packed map[uint64][]byte // interior values read by this call
	for i, idx := range indexes {
		level, n := tlog.SplitStoredHashIndex(idx)
		seq := uint64(n+1)<<uint(level) - 1 // the record completing the subtree
		if r.reads != nil {
			*r.reads++
		}
		switch {
		case seq < r.packedFrom:
			h, err := r.hashKey(idx)
			if err != nil {
				return nil, err
			}
			out[i] = h
		case level == 0:
			rec, err := r.c.get(r.txn, recordKey(seq))
			if errors.Is(err, badger.ErrKeyNotFound) {
				return nil, &CorruptError{Seq: seq, What: "record missing (for its leaf hash)"}
			}
			if err != nil {
				return nil, err
			}
			out[i] = tlog.RecordHash(rec)
		default:
			v, ok := packed[seq]
			if !ok {
				var err error
				v, err = r.c.get(r.txn, interiorKey(seq))
				if errors.Is(err, badger.ErrKeyNotFound) {
					return nil, &CorruptError{Seq: seq, What: "stored interior hashes missing"}
				}
				if err != nil {
					return nil, err
				}
				if len(v) != 32*interiorCount(seq) {
					return nil, &CorruptError{Seq: seq, What: fmt.Sprintf("stored interior hashes are %d bytes, want %d", len(v), 32*interiorCount(seq))}
				}
				if packed == nil {
					packed = map[uint64][]byte{}
				}
				packed[seq] = v
			}
			if level > interiorCount(seq) {
				return nil, &CorruptError{Seq: seq, What: fmt.Sprintf("no stored hash at level %d", level)}
			}
			copy(out[i][:], v[(level-1)*32:level*32])
		}
	}
	return out, nil
}

// hashKey reads a hash stored under its own key (the layout before packed
// hashes).
func (r txnReader) hashKey(idx int64) (tlog.Hash, error) {
	var h tlog.Hash
	item, err := r.txn.Get(hashKey(idx))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return h, &CorruptError{Seq: uint64(idx), What: "stored hash missing"}
	}
	if err != nil {
		return h, err
	}
	v, err := r.c.value(item)
	if err != nil {
		return h, err
	}
	if len(v) != 32 {
		return h, &CorruptError{Seq: uint64(idx), What: fmt.Sprintf("stored hash is %d bytes", len(v))}
	}
	copy(h[:], v)
	return h, nil
}

// appendStoredKVs appends to kvs the writes storing the hashes hs of
// record seq (tlog.StoredHashesForRecordHash): its interior hashes packed
// under one key, or nothing for an even seq.
func appendStoredKVs(kvs []kv, seq uint64, hs []tlog.Hash) []kv {
	if len(hs) <= 1 {
		return kvs
	}
	v := make([]byte, 0, 32*(len(hs)-1))
	for _, h := range hs[1:] {
		v = append(v, h[:]...)
	}
	return append(kvs, kv{key: interiorKey(seq), val: v})
}
