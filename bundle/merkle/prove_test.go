package merkle

import (
	"errors"
	"testing"
)

func leavesN(n int) [][32]byte {
	out := make([][32]byte, n)
	for i := range out {
		out[i] = LeafHash([]byte{byte(i), byte(i >> 8)})
	}
	return out
}

// TestProofsVerify generates inclusion and consistency proofs for every
// index and size up to 40 and checks them with the verifiers.
func TestProofsVerify(t *testing.T) {
	all := leavesN(40)
	for size := 1; size <= len(all); size++ {
		full := &Partial{Leaves: all[:size]}
		root := RangeRoot(CompactRange(all[:size]))
		for start := 0; start < size; start++ {
			part := &Partial{Start: uint64(start), Range: CompactRange(all[:start]), Leaves: all[start:size]}
			for i := start; i < size; i++ {
				p, err := InclusionProof(part.Hash, uint64(i), uint64(size))
				if err != nil {
					t.Fatalf("size %d start %d leaf %d: %v", size, start, i, err)
				}
				if err := VerifyInclusion(p, uint64(i), uint64(size), root, all[i]); err != nil {
					t.Fatalf("size %d start %d leaf %d: %v", size, start, i, err)
				}
			}
		}
		for old := 0; old <= size; old++ {
			p, err := ConsistencyProof(full.Hash, uint64(old), uint64(size))
			if err != nil {
				t.Fatal(err)
			}
			oldRoot := RangeRoot(CompactRange(all[:old]))
			if err := VerifyConsistency(p, uint64(old), uint64(size), oldRoot, root); err != nil {
				t.Fatalf("consistency %d -> %d: %v", old, size, err)
			}
		}
	}
}

// TestPartialUnavailable refuses a leaf below the start of a partial tree.
func TestPartialUnavailable(t *testing.T) {
	all := leavesN(9)
	part := &Partial{Start: 5, Range: CompactRange(all[:5]), Leaves: all[5:]}
	if _, err := InclusionProof(part.Hash, 2, 9); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("leaf below start: %v", err)
	}
	if _, err := InclusionProof(part.Hash, 9, 9); !errors.Is(err, ErrProof) {
		t.Fatalf("leaf beyond size: %v", err)
	}
	if h, err := part.Hash(0, 4); err != nil || h != part.Range[0] {
		t.Fatalf("compact node: %x %v", h, err)
	}
}
