package merkle_test

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"testing"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/edgeseal/edgeseal/bundle/merkle"
)

// hashStore is an x/mod/sumdb/tlog stored-hash log, the reference.
type hashStore []tlog.Hash

func (s hashStore) ReadHashes(idx []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(idx))
	for i, x := range idx {
		out[i] = s[x]
	}
	return out, nil
}

func buildLog(t *testing.T, n int) (hashStore, [][32]byte) {
	t.Helper()
	var s hashStore
	var leaves [][32]byte
	for i := range n {
		rec := binary.BigEndian.AppendUint64([]byte("rec"), uint64(i))
		hs, err := tlog.StoredHashes(int64(i), rec, s)
		if err != nil {
			t.Fatal(err)
		}
		s = append(s, hs...)
		leaves = append(leaves, merkle.LeafHash(rec))
	}
	return s, leaves
}

func TestFoldRangeMatchesTlog(t *testing.T) {
	const n = 70
	s, leaves := buildLog(t, n)
	if merkle.RangeRoot(nil) != sha256.Sum256(nil) {
		t.Error("empty root is not SHA-256 of nothing")
	}
	for prev := 0; prev <= n; prev += 3 {
		rng := merkle.CompactRange(leaves[:prev])
		if prev > 0 {
			want, _ := tlog.TreeHash(int64(prev), s)
			if got := merkle.RangeRoot(rng); got != want {
				t.Fatalf("size %d: range root %x, tlog %x", prev, got, want)
			}
		}
		for size := prev; size <= n; size += 5 {
			got, _, err := merkle.FoldRange(rng, uint64(prev), leaves[prev:size])
			if err != nil {
				t.Fatal(err)
			}
			if size == 0 {
				continue
			}
			want, _ := tlog.TreeHash(int64(size), s)
			if got != want {
				t.Fatalf("fold %d..%d: %x, tlog %x", prev, size, got, want)
			}
		}
	}
	if _, _, err := merkle.FoldRange(merkle.CompactRange(leaves[:5]), 7, nil); !errors.Is(err, merkle.ErrProof) {
		t.Errorf("range of size 5 accepted for size 7: %v", err)
	}
}

func TestProofs(t *testing.T) {
	const n = 37
	s, leaves := buildLog(t, n)
	root := func(size int) [32]byte { h, _ := tlog.TreeHash(int64(size), s); return h }
	conv := func(p []tlog.Hash) [][32]byte {
		out := make([][32]byte, len(p))
		for i := range p {
			out[i] = p[i]
		}
		return out
	}
	for _, c := range [][2]int{{1, 1}, {1, 37}, {16, 37}, {17, 32}, {36, 37}} {
		old, size := c[0], c[1]
		tp, err := tlog.ProveTree(int64(size), int64(old), s)
		if err != nil {
			t.Fatal(err)
		}
		p := conv(tp)
		if err := merkle.VerifyConsistency(p, uint64(old), uint64(size), root(old), root(size)); err != nil {
			t.Errorf("consistency %d->%d: %v", old, size, err)
		}
		if err := merkle.VerifyConsistency(p, uint64(old), uint64(size), root(old), sha256.Sum256(nil)); err == nil && old != size {
			t.Errorf("consistency %d->%d with wrong root accepted", old, size)
		}
		rp, err := tlog.ProveRecord(int64(size), int64(old-1), s)
		if err != nil {
			t.Fatal(err)
		}
		if err := merkle.VerifyInclusion(conv(rp), uint64(old-1), uint64(size), root(size), leaves[old-1]); err != nil {
			t.Errorf("inclusion %d in %d: %v", old-1, size, err)
		}
		if err := merkle.VerifyInclusion(conv(rp), uint64(old-1), uint64(size), root(size), leaves[0]); err == nil && old != 1 {
			t.Errorf("inclusion of wrong leaf accepted")
		}
	}
	if err := merkle.VerifyConsistency(nil, 0, 5, [32]byte{}, root(5)); err != nil {
		t.Errorf("empty old tree: %v", err)
	}
	if err := merkle.VerifyConsistency(nil, 6, 5, root(5), root(5)); err == nil {
		t.Error("shrinking tree accepted")
	}
}
