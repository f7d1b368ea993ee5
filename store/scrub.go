package store

import (
	"context"
	"fmt"

	"github.com/dgraph-io/badger/v4"
	"golang.org/x/mod/sumdb/tlog"
)

// Scrub re-verifies the journal of the current size from one snapshot:
// every record is re-hashed against its stored leaf hash, every stored
// interior hash is recomputed from the leaves, the last leaf and the root
// are checked against the metadata. fn (may be nil) is called for each
// record, in order, with the previous leaf hash (all zero for seq 0) so
// the caller can check the record's own prev field; rec is only valid
// during the call. The first mismatch is returned as a *CorruptError; an
// error from fn or ctx stops the walk and is returned.
func (j *Journal) Scrub(ctx context.Context, fn func(seq uint64, rec []byte, prev [32]byte) error) error {
	if err := j.enter(); err != nil {
		return fmt.Errorf("store: scrub: %w", err)
	}
	defer j.leave()
	err := j.db.View(func(txn *badger.Txn) error {
		raw, err := j.c.get(txn, metaKey)
		if err != nil {
			if size := j.Size(); size == 0 {
				return nil
			}
			return &CorruptError{What: "metadata: " + err.Error()}
		}
		m, err := decodeMeta(raw)
		if err != nil {
			return &CorruptError{What: "metadata: " + err.Error()}
		}
		var frontier []node
		rd := j.hashReader(txn)
		reader := tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) {
			out := make([]tlog.Hash, len(idx))
			for i, x := range idx {
				found := false
				for _, nd := range frontier {
					if tlog.StoredHashIndex(nd.level, nd.n) == x {
						out[i], found = nd.hash, true
						break
					}
				}
				if !found {
					return nil, fmt.Errorf("scrub: hash %d not in frontier", x)
				}
			}
			return out, nil
		})
		var prev [32]byte
		err = iterRecords(ctx, txn, j.c, 0, m.Size, func(seq uint64, rec []byte) error {
			leaf := tlog.RecordHash(rec)
			hs, err := tlog.StoredHashesForRecordHash(int64(seq), leaf, reader)
			if err != nil {
				return err
			}
			base := tlog.StoredHashIndex(0, int64(seq))
			stored := make([]int64, len(hs))
			for k := range hs {
				stored[k] = base + int64(k)
			}
			// From packedFrom on the leaf hash is the record's own and
			// only the interior hashes are stored (hashes.go).
			skip := 0
			if seq >= j.packedFrom {
				skip = 1
			}
			got, err := rd.ReadHashes(stored[skip:])
			if err != nil {
				return err
			}
			if skip == 0 && got[0] != leaf {
				return &CorruptError{Seq: seq, What: "record does not hash to its stored leaf hash"}
			}
			for k := 1; k < len(hs); k++ {
				if got[k-skip] != hs[k] {
					// A record of the subtree or the stored hash was
					// altered; with packed hashes (no stored leaf hashes)
					// the records cannot tell which.
					first := seq + 1 - 1<<k
					return &CorruptError{Seq: first, What: fmt.Sprintf("records %d..%d do not recompute their stored level-%d hash (a record or the hash was altered)", first, seq, k)}
				}
			}
			frontier = pushFrontier(frontier, int64(seq), hs)
			if fn != nil {
				if err := fn(seq, rec, prev); err != nil {
					return err
				}
			}
			prev = leaf
			return nil
		})
		if err != nil {
			return err
		}
		if prev != m.LastLeaf {
			return &CorruptError{Seq: m.Size, What: "last leaf differs from metadata"}
		}
		if _, err := txn.Get(recordKey(m.Size)); err == nil {
			return &CorruptError{Seq: m.Size, What: "record beyond the recorded size"}
		}
		root, err := tlog.TreeHash(int64(m.Size), rd)
		if err != nil {
			return err
		}
		rng := make([]tlog.Hash, len(frontier))
		for i, nd := range frontier {
			rng[i] = nd.hash
		}
		if foldRoot(rng) != root {
			return &CorruptError{Seq: m.Size, What: "root from stored hashes differs from the recomputed root"}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("store: scrub: %w", err)
	}
	return nil
}
