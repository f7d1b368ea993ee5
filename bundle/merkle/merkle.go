package merkle

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"math/bits"

	"golang.org/x/mod/sumdb/tlog"
)

// MaxProofLen bounds proofs and compact ranges (a tree of 2^64 leaves
// needs at most 2*64 hashes for consistency).
const MaxProofLen = 128

// ErrProof reports a Merkle proof or compact range that does not verify.
var ErrProof = fmt.Errorf("bundle: merkle proof invalid")

// VerifyInclusion checks an RFC 6962 inclusion proof of leaf index in a
// tree of size with root.
func VerifyInclusion(proof [][32]byte, index, size uint64, root, leaf [32]byte) error {
	if len(proof) > MaxProofLen || index >= size || size > 1<<62 {
		return ErrProof
	}
	if err := tlog.CheckRecord(tlog.RecordProof(toTlog(proof)), int64(size), root, int64(index), leaf); err != nil {
		return fmt.Errorf("%w: %v", ErrProof, err)
	}
	return nil
}

// VerifyConsistency checks an RFC 6962 consistency proof from (oldSize,
// oldRoot) to (newSize, newRoot). An empty old tree is consistent with any
// tree and needs an empty proof.
func VerifyConsistency(proof [][32]byte, oldSize, newSize uint64, oldRoot, newRoot [32]byte) error {
	if len(proof) > MaxProofLen || oldSize > newSize || newSize > 1<<62 {
		return ErrProof
	}
	if oldSize == 0 {
		if len(proof) != 0 {
			return fmt.Errorf("%w: proof from the empty tree", ErrProof)
		}
		return nil
	}
	if err := tlog.CheckTree(toTlog(proof), int64(newSize), newRoot, int64(oldSize), oldRoot); err != nil {
		return fmt.Errorf("%w: %v", ErrProof, err)
	}
	return nil
}

func toTlog(p [][32]byte) tlog.TreeProof {
	out := make(tlog.TreeProof, len(p))
	for i, h := range p {
		out[i] = h
	}
	return out
}

// CompactRange returns the compact range of a tree of size leaves: the
// roots of its maximal perfect subtrees, left to right (largest first).
// It folds the leaf hashes without storing the tree.
func CompactRange(leaves [][32]byte) [][32]byte {
	var r [][32]byte
	for i, l := range leaves {
		r = appendLeaf(r, uint64(i), l)
	}
	return r
}

// appendLeaf adds the leaf at index size (the current tree size) to the
// compact range r.
func appendLeaf(r [][32]byte, size uint64, leaf [32]byte) [][32]byte {
	h := leaf
	for n := size; n&1 == 1; n >>= 1 {
		h = nodeHash(r[len(r)-1], h)
		r = r[:len(r)-1]
	}
	return append(r, h)
}

// RangeRoot is the root of a tree given its compact range: the subtree
// roots folded right to left. The empty tree's root is SHA-256("").
func RangeRoot(r [][32]byte) [32]byte {
	if len(r) == 0 {
		return emptyRoot
	}
	h := r[len(r)-1]
	for i := len(r) - 2; i >= 0; i-- {
		h = nodeHash(r[i], h)
	}
	return h
}

var emptyRoot = [32]byte{0xe3, 0xb0, 0xc4, 0x42, 0x98, 0xfc, 0x1c, 0x14, 0x9a, 0xfb, 0xf4, 0xc8, 0x99, 0x6f, 0xb9, 0x24, 0x27, 0xae, 0x41, 0xe4, 0x64, 0x9b, 0x93, 0x4c, 0xa4, 0x95, 0x99, 0x1b, 0x78, 0x52, 0xb8, 0x55}

// FoldRange extends the compact range of [0,prevSize) by leaves and returns
// the root of [0,prevSize+len(leaves)) and the new compact range. It fails
// when the range does not have one hash per set bit of prevSize.
func FoldRange(r [][32]byte, prevSize uint64, leaves [][32]byte) ([32]byte, [][32]byte, error) {
	if len(r) != bits.OnesCount64(prevSize) {
		return [32]byte{}, nil, fmt.Errorf("%w: compact range of %d hashes for size %d", ErrProof, len(r), prevSize)
	}
	cur := append([][32]byte(nil), r...)
	for i, l := range leaves {
		cur = appendLeaf(cur, prevSize+uint64(i), l)
	}
	return RangeRoot(cur), cur, nil
}

// LeafHash is the RFC 6962 leaf hash of a record: SHA-256(0x00 || record).
func LeafHash(record []byte) [32]byte {
	h := sha256.New()
	h.Write([]byte{0})
	h.Write(record)
	var out [32]byte
	h.Sum(out[:0])
	return out
}

// nodeHash is the RFC 6962 interior node hash SHA-256(0x01 || l || r).
func nodeHash(l, r [32]byte) [32]byte {
	var buf [65]byte
	buf[0] = 1
	copy(buf[1:], l[:])
	copy(buf[33:], r[:])
	return sha256.Sum256(buf[:])
}

// ProofBytes copies proof hashes into the [][]byte form the JSON formats
// carry (base64 each).
func ProofBytes(hs [][32]byte) [][]byte {
	out := make([][]byte, len(hs))
	for i := range hs {
		out[i] = bytes.Clone(hs[i][:])
	}
	return out
}

// ProofHashes is the inverse of ProofBytes; the caller has checked that
// each element is 32 bytes.
func ProofHashes(bs [][]byte) [][32]byte {
	out := make([][32]byte, len(bs))
	for i, b := range bs {
		copy(out[i][:], b)
	}
	return out
}
