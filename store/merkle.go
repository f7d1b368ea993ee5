package store

import (
	"fmt"
	"math/bits"

	"github.com/dgraph-io/badger/v4"
	"golang.org/x/mod/sumdb/tlog"
)

// node is one root of the compact range: the perfect subtree at level
// covering leaves [n<<level, (n+1)<<level).
type node struct {
	level int
	n     int64
	hash  tlog.Hash
}

// compactIndexes returns the stored-hash indexes of the roots of the
// maximal perfect subtrees of [0,size), left to right.
func compactIndexes(size uint64) []int64 {
	var out []int64
	var start uint64
	for l := 63; l >= 0; l-- {
		if size&(1<<uint(l)) != 0 {
			out = append(out, tlog.StoredHashIndex(l, int64(start>>uint(l))))
			start += 1 << uint(l)
		}
	}
	return out
}

// compactNodes is compactIndexes with coordinates.
func compactNodes(size uint64) []node {
	var out []node
	var start uint64
	for l := 63; l >= 0; l-- {
		if size&(1<<uint(l)) != 0 {
			out = append(out, node{level: l, n: int64(start >> uint(l))})
			start += 1 << uint(l)
		}
	}
	return out
}

// foldRoot computes the tree root from its compact range.
func foldRoot(rng []tlog.Hash) tlog.Hash {
	if len(rng) == 0 {
		return tlog.Hash(emptyRoot)
	}
	h := rng[len(rng)-1]
	for i := len(rng) - 2; i >= 0; i-- {
		h = tlog.NodeHash(rng[i], h)
	}
	return h
}

// emptyRoot is the RFC 6962 root of the empty tree, SHA-256 of "".
var emptyRoot = [32]byte{
	0xe3, 0xb0, 0xc4, 0x42, 0x98, 0xfc, 0x1c, 0x14,
	0x9a, 0xfb, 0xf4, 0xc8, 0x99, 0x6f, 0xb9, 0x24,
	0x27, 0xae, 0x41, 0xe4, 0x64, 0x9b, 0x93, 0x4c,
	0xa4, 0x95, 0x99, 0x1b, 0x78, 0x52, 0xb8, 0x55,
}

// seqReader serves the sequencer: the frontier (compact range of the
// size being built), then the overlay of hashes built in this batch and
// not yet committed, then Badger.
type seqReader struct {
	j *Journal
}

func (r seqReader) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	var miss []int64
	var missAt []int
	for i, idx := range indexes {
		if h, ok := r.j.lookupBuilt(idx); ok {
			out[i] = h
			continue
		}
		miss = append(miss, idx)
		missAt = append(missAt, i)
	}
	if len(miss) == 0 {
		return out, nil
	}
	err := r.j.db.View(func(txn *badger.Txn) error {
		hs, err := r.j.hashReader(txn).ReadHashes(miss)
		if err != nil {
			return err
		}
		for k, h := range hs {
			out[missAt[k]] = h
		}
		return nil
	})
	return out, err
}

// pushFrontier updates the compact range after appending record seq whose
// stored hashes (tlog.StoredHashesForRecordHash) are hs.
func pushFrontier(f []node, seq int64, hs []tlog.Hash) []node {
	m := len(hs) - 1 // subtrees completed by this leaf
	f = f[:len(f)-m]
	return append(f, node{level: m, n: seq >> uint(m), hash: hs[m]})
}

func toHashes(ps []tlog.Hash) [][32]byte {
	out := make([][32]byte, len(ps))
	for i, p := range ps {
		out[i] = p
	}
	return out
}

// Root returns the RFC 6962 root of the first size records, size <=
// Size(). Root(0) is SHA-256 of the empty string. *RangeError beyond Size.
func (j *Journal) Root(size uint64) ([32]byte, error) {
	if cur := j.Size(); size > cur {
		return [32]byte{}, fmt.Errorf("store: root: %w", &RangeError{What: "root", A: size, B: size, Size: cur})
	}
	var root tlog.Hash
	err := j.db.View(func(txn *badger.Txn) error {
		var err error
		root, err = tlog.TreeHash(int64(size), j.hashReader(txn))
		return err
	})
	if err != nil {
		return [32]byte{}, fmt.Errorf("store: root %d: %w", size, err)
	}
	return root, nil
}

// InclusionProof returns the RFC 6962/9162 audit path proving record seq
// is in the tree of the given size (seq < size <= Size()); it verifies
// with tlog.CheckRecord. *RangeError otherwise.
func (j *Journal) InclusionProof(seq, size uint64) ([][32]byte, error) {
	if cur := j.Size(); seq >= size || size > cur {
		return nil, fmt.Errorf("store: inclusion proof: %w", &RangeError{What: "inclusion proof", A: seq, B: size, Size: cur})
	}
	var p tlog.RecordProof
	err := j.db.View(func(txn *badger.Txn) error {
		var err error
		p, err = tlog.ProveRecord(int64(size), int64(seq), j.hashReader(txn))
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("store: inclusion proof %d in %d: %w", seq, size, err)
	}
	return toHashes(p), nil
}

// ConsistencyProof returns the RFC 6962/9162 proof that the tree of
// newSize extends the tree of oldSize (oldSize <= newSize <= Size()); it
// verifies with tlog.CheckTree. For oldSize 0 or oldSize == newSize the
// proof is empty. *RangeError otherwise.
func (j *Journal) ConsistencyProof(oldSize, newSize uint64) ([][32]byte, error) {
	if cur := j.Size(); oldSize > newSize || newSize > cur {
		return nil, fmt.Errorf("store: consistency proof: %w", &RangeError{What: "consistency proof", A: oldSize, B: newSize, Size: cur})
	}
	if oldSize == 0 || oldSize == newSize {
		return [][32]byte{}, nil
	}
	var p tlog.TreeProof
	err := j.db.View(func(txn *badger.Txn) error {
		var err error
		p, err = tlog.ProveTree(int64(newSize), int64(oldSize), j.hashReader(txn))
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("store: consistency proof %d..%d: %w", oldSize, newSize, err)
	}
	return toHashes(p), nil
}

// RangeHashes returns the compact range of [0,size): the roots of the
// maximal perfect subtrees, left to right (one per set bit of size, the
// largest first). Folding them right to left with the node hash gives
// Root(size); a verifier holding them and the leaves from size on can
// compute every later root. Empty for size 0. *RangeError beyond Size.
func (j *Journal) RangeHashes(size uint64) ([][32]byte, error) {
	if cur := j.Size(); size > cur {
		return nil, fmt.Errorf("store: range hashes: %w", &RangeError{What: "range hashes", A: size, B: size, Size: cur})
	}
	var hs []tlog.Hash
	err := j.db.View(func(txn *badger.Txn) error {
		var err error
		hs, err = j.hashReader(txn).ReadHashes(compactIndexes(size))
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("store: range hashes %d: %w", size, err)
	}
	return toHashes(hs), nil
}

// FoldRange computes the root of a tree from its compact range (as
// returned by RangeHashes). It is the verifier's side of RangeHashes.
func FoldRange(rng [][32]byte) [32]byte {
	hs := make([]tlog.Hash, len(rng))
	for i, h := range rng {
		hs[i] = h
	}
	return foldRoot(hs)
}

// ExtendRange appends leaf hashes to a compact range of [0,size) and
// returns the compact range of [0,size+len(leaves)).
func ExtendRange(rng [][32]byte, size uint64, leaves [][32]byte) ([][32]byte, error) {
	want := bits.OnesCount64(size)
	if len(rng) != want {
		return nil, fmt.Errorf("store: extend range: %d hashes for size %d, want %d", len(rng), size, want)
	}
	f := make([]node, len(rng))
	for i, nd := range compactNodes(size) {
		nd.hash = rng[i]
		f[i] = nd
	}
	for _, leaf := range leaves {
		f = append(f, node{level: 0, n: int64(size), hash: leaf})
		for len(f) >= 2 && f[len(f)-1].level == f[len(f)-2].level {
			l, r := f[len(f)-2], f[len(f)-1]
			f = append(f[:len(f)-2], node{level: l.level + 1, n: l.n >> 1, hash: tlog.NodeHash(l.hash, r.hash)})
		}
		size++
	}
	out := make([][32]byte, len(f))
	for i, nd := range f {
		out[i] = nd.hash
	}
	return out, nil
}

// TileHashes returns the C2SP tlog-tiles hash tile (height 8) at tile
// level level and index index, width hashes wide (1 to 256): the hashes of
// the perfect subtrees of 256^level leaves numbered index*256 to
// index*256+width-1, 32 bytes each, left to right. Every one of them must
// be complete in the tree of Size(), else *RangeError.
func (j *Journal) TileHashes(level, index uint64, width int) ([]byte, error) {
	cur := j.Size()
	last := index*256 + uint64(width) - 1
	if width < 1 || width > 256 || level > 7 || index > (1<<56)-1 || last >= cur>>(8*level) {
		return nil, fmt.Errorf("store: tile hashes: %w", &RangeError{What: "tile", A: level, B: index, Size: cur})
	}
	var data []byte
	err := j.db.View(func(txn *badger.Txn) error {
		var err error
		data, err = tlog.ReadTileData(tlog.Tile{H: 8, L: int(level), N: int64(index), W: width}, txnReader{txn: txn, c: j.c})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("store: tile %d/%d: %w", level, index, err)
	}
	return data, nil
}
