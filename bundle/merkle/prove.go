package merkle

import (
	"errors"
	"fmt"
	"math/bits"
)

// ErrUnavailable reports a proof that needs a subtree hash the caller's
// tree does not have (a leaf below a Partial tree's start).
var ErrUnavailable = errors.New("bundle: merkle subtree not available")

// Partial is what a reader of one bundle knows of a device's tree: the
// compact range of [0, Start) and the leaf hashes of [Start, Start+len(Leaves)).
// A tree of a whole log is a Partial with Start 0 and no Range.
type Partial struct {
	Start  uint64
	Range  [][32]byte
	Leaves [][32]byte
}

// Size is the tree size the Partial covers.
func (t *Partial) Size() uint64 { return t.Start + uint64(len(t.Leaves)) }

// Hash returns the RFC 6962 hash of the leaves [lo, hi). Below Start only
// the subtrees of the compact range are known; any other subtree there is
// ErrUnavailable.
func (t *Partial) Hash(lo, hi uint64) ([32]byte, error) {
	if lo >= hi || hi > t.Size() {
		return [32]byte{}, fmt.Errorf("%w: [%d,%d) of %d", ErrUnavailable, lo, hi, t.Size())
	}
	if hi <= t.Start {
		// The compact range's nodes: [0,2^a), [2^a, 2^a+2^b), ...
		off := uint64(0)
		i := 0
		for b := 63; b >= 0 && i < len(t.Range); b-- {
			w := uint64(1) << b
			if t.Start&w == 0 {
				continue
			}
			if off == lo && off+w == hi {
				return t.Range[i], nil
			}
			off += w
			i++
		}
		return [32]byte{}, fmt.Errorf("%w: [%d,%d) below %d", ErrUnavailable, lo, hi, t.Start)
	}
	if hi-lo == 1 {
		return t.Leaves[lo-t.Start], nil
	}
	k := splitPoint(hi - lo)
	l, err := t.Hash(lo, lo+k)
	if err != nil {
		return l, err
	}
	r, err := t.Hash(lo+k, hi)
	if err != nil {
		return r, err
	}
	return nodeHash(l, r), nil
}

// splitPoint is the largest power of two below n (n >= 2).
func splitPoint(n uint64) uint64 { return uint64(1) << (bits.Len64(n-1) - 1) }

// Subtree hashes the leaves [lo, hi) of a tree (see Partial.Hash).
type Subtree func(lo, hi uint64) ([32]byte, error)

// InclusionProof returns the RFC 6962 inclusion proof (PATH) of leaf
// index in the tree of size whose subtree hashes h gives.
func InclusionProof(h Subtree, index, size uint64) ([][32]byte, error) {
	if index >= size {
		return nil, fmt.Errorf("%w: leaf %d of a tree of %d", ErrProof, index, size)
	}
	var path [][32]byte
	lo, hi := uint64(0), size
	// Collected top-down; RFC 6962 lists them bottom-up.
	for hi-lo > 1 {
		k := splitPoint(hi - lo)
		var sib [32]byte
		var err error
		if index < lo+k {
			sib, err = h(lo+k, hi)
			hi = lo + k
		} else {
			sib, err = h(lo, lo+k)
			lo += k
		}
		if err != nil {
			return nil, err
		}
		path = append(path, sib)
	}
	for i, j := 0, len(path)-1; i < j; i, j = i+1, j-1 {
		path[i], path[j] = path[j], path[i]
	}
	return path, nil
}

// ConsistencyProof returns the RFC 6962 consistency proof (PROOF) from
// the tree of size old to the tree of size size; empty when old is 0 or
// equals size.
func ConsistencyProof(h Subtree, old, size uint64) ([][32]byte, error) {
	if old > size {
		return nil, fmt.Errorf("%w: consistency from %d to %d", ErrProof, old, size)
	}
	if old == 0 || old == size {
		return nil, nil
	}
	return subproof(h, old, 0, size, true)
}

// subproof is SUBPROOF(m, D[lo:hi], b) of RFC 6962 section 2.1.2.
func subproof(h Subtree, m, lo, hi uint64, b bool) ([][32]byte, error) {
	n := hi - lo
	if m == n {
		if b {
			return nil, nil
		}
		x, err := h(lo, hi)
		if err != nil {
			return nil, err
		}
		return [][32]byte{x}, nil
	}
	k := splitPoint(n)
	if m <= k {
		p, err := subproof(h, m, lo, lo+k, b)
		if err != nil {
			return nil, err
		}
		x, err := h(lo+k, hi)
		if err != nil {
			return nil, err
		}
		return append(p, x), nil
	}
	p, err := subproof(h, m-k, lo+k, hi, false)
	if err != nil {
		return nil, err
	}
	x, err := h(lo, lo+k)
	if err != nil {
		return nil, err
	}
	return append(p, x), nil
}
