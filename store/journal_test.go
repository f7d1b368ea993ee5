package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"math/bits"
	"testing"

	"golang.org/x/mod/sumdb/tlog"
)

func TestAppendReadRoundTrip(t *testing.T) {
	ctx := context.Background()
	j := openT(t, t.TempDir())
	defer j.Close()

	if j.Size() != 0 || j.LastLeaf() != ([32]byte{}) {
		t.Fatalf("fresh journal: size %d last %x", j.Size(), j.LastLeaf())
	}
	var prevSeen [][32]byte
	var recs [][]byte
	for i := range 10 {
		data := fmt.Appendf(nil, "payload %d", i)
		d := sha256.Sum256(data)
		var rec []byte
		a, err := j.Append(ctx, Entry{
			Build: func(seq uint64, prev [32]byte) ([]byte, error) {
				prevSeen = append(prevSeen, prev)
				rec = fmt.Appendf(nil, `{"seq":%d,"digest":"%x"}`, seq, d)
				return rec, nil
			},
			Payloads: []Payload{{Digest: d, Data: data}},
		})
		if err != nil {
			t.Fatalf("append %d: %v", i, err)
		}
		if a.Seq != uint64(i) || a.Size != uint64(i+1) || a.Leaf != leafHash(rec) {
			t.Fatalf("append %d: got %+v, want seq %d size %d leaf %x", i, a, i, i+1, leafHash(rec))
		}
		recs = append(recs, rec)
	}
	if prevSeen[0] != ([32]byte{}) {
		t.Fatalf("prev of seq 0 = %x, want zero", prevSeen[0])
	}
	for i := 1; i < len(recs); i++ {
		if prevSeen[i] != leafHash(recs[i-1]) {
			t.Fatalf("prev of seq %d = %x, want leaf of %d", i, prevSeen[i], i-1)
		}
	}
	if j.Size() != 10 || j.LastLeaf() != leafHash(recs[9]) {
		t.Fatalf("size %d last %x", j.Size(), j.LastLeaf())
	}
	for i, want := range recs {
		got, err := j.Record(uint64(i))
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("record %d = %q, %v; want %q", i, got, err, want)
		}
		data := fmt.Appendf(nil, "payload %d", i)
		p, err := j.Payload(sha256.Sum256(data))
		if err != nil || !bytes.Equal(p, data) {
			t.Fatalf("payload %d = %q, %v", i, p, err)
		}
	}
	if _, err := j.Record(10); !errors.Is(err, ErrNotFound) {
		t.Fatalf("record beyond size: %v, want ErrNotFound", err)
	}
	var n uint64
	err := j.Records(ctx, 3, 8, func(seq uint64, rec []byte) error {
		if seq != 3+n || !bytes.Equal(rec, recs[seq]) {
			return fmt.Errorf("records: seq %d rec %q", seq, rec)
		}
		n++
		return nil
	})
	if err != nil || n != 5 {
		t.Fatalf("records: %v after %d", err, n)
	}
	var re *RangeError
	if err := j.Records(ctx, 0, 11, func(uint64, []byte) error { return nil }); !errors.As(err, &re) {
		t.Fatalf("records beyond size: %v, want *RangeError", err)
	}
	stop := errors.New("stop")
	if err := j.Records(ctx, 0, 10, func(uint64, []byte) error { return stop }); !errors.Is(err, stop) {
		t.Fatalf("records callback error: %v", err)
	}
}

func TestAppendRejectsBadDigest(t *testing.T) {
	j := openT(t, t.TempDir())
	defer j.Close()
	_, err := j.Append(context.Background(), Entry{
		Build:    build("x"),
		Payloads: []Payload{{Digest: sha256.Sum256([]byte("a")), Data: []byte("b")}},
	})
	var de *DigestError
	if !errors.As(err, &de) || de.Got != sha256.Sum256([]byte("b")) {
		t.Fatalf("bad digest: %v", err)
	}
	if j.Size() != 0 {
		t.Fatalf("size %d after refused append", j.Size())
	}
}

func TestProofsAgainstRoot(t *testing.T) {
	j := openT(t, t.TempDir())
	defer j.Close()
	const n = 70
	var leaves [][32]byte
	for i := 0; i < n; i += 7 {
		// Mixed batch sizes so commit boundaries vary.
		for _, a := range appendN(t, j, min(7, n-i), fmt.Sprint(i)) {
			leaves = append(leaves, a.Leaf)
		}
	}
	for size := uint64(0); size <= n; size++ {
		root, err := j.Root(size)
		if err != nil {
			t.Fatal(err)
		}
		if want := mth(leaves[:size]); root != want {
			t.Fatalf("root(%d) = %x, want %x", size, root, want)
		}
		for seq := uint64(0); seq < size; seq++ {
			p, err := j.InclusionProof(seq, size)
			if err != nil {
				t.Fatal(err)
			}
			if err := tlog.CheckRecord(toTlog(p), int64(size), root, int64(seq), leaves[seq]); err != nil {
				t.Fatalf("inclusion %d in %d: %v", seq, size, err)
			}
			if seq == 0 && size > 1 {
				// A proof for another leaf must fail.
				if err := tlog.CheckRecord(toTlog(p), int64(size), root, int64(seq), leaves[1]); err == nil {
					t.Fatalf("inclusion proof accepted the wrong leaf")
				}
			}
		}
		for old := uint64(1); old <= size; old++ {
			p, err := j.ConsistencyProof(old, size)
			if err != nil {
				t.Fatal(err)
			}
			oldRoot := mth(leaves[:old])
			if err := tlog.CheckTree(toTlog(p), int64(size), root, int64(old), oldRoot); err != nil {
				t.Fatalf("consistency %d..%d: %v", old, size, err)
			}
		}
	}
	var re *RangeError
	if _, err := j.InclusionProof(5, n+1); !errors.As(err, &re) {
		t.Fatalf("proof beyond size: %v", err)
	}
	if _, err := j.InclusionProof(5, 5); !errors.As(err, &re) {
		t.Fatalf("proof seq == size: %v", err)
	}
	if _, err := j.ConsistencyProof(6, 5); !errors.As(err, &re) {
		t.Fatalf("consistency old > new: %v", err)
	}
	if _, err := j.Root(n + 1); !errors.As(err, &re) {
		t.Fatalf("root beyond size: %v", err)
	}
}

func toTlog(p [][32]byte) []tlog.Hash {
	out := make([]tlog.Hash, len(p))
	for i := range p {
		out[i] = p[i]
	}
	return out
}

func TestRangeHashes(t *testing.T) {
	j := openT(t, t.TempDir())
	defer j.Close()
	const n = 80
	var leaves [][32]byte
	for _, a := range appendN(t, j, n, "r") {
		leaves = append(leaves, a.Leaf)
	}
	for size := uint64(0); size <= n; size++ {
		rng, err := j.RangeHashes(size)
		if err != nil {
			t.Fatal(err)
		}
		if len(rng) != bits.OnesCount64(size) {
			t.Fatalf("range(%d) has %d hashes", size, len(rng))
		}
		if got, want := FoldRange(rng), mth(leaves[:size]); got != want {
			t.Fatalf("fold(range(%d)) = %x, want %x", size, got, want)
		}
		for _, k := range []uint64{1, 2, 3, 9, 33} {
			if size+k > n {
				continue
			}
			ext, err := ExtendRange(rng, size, leaves[size:size+k])
			if err != nil {
				t.Fatal(err)
			}
			if got, want := FoldRange(ext), mth(leaves[:size+k]); got != want {
				t.Fatalf("extend range(%d) by %d: root %x, want %x", size, k, got, want)
			}
			next, err := j.RangeHashes(size + k)
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(next) != fmt.Sprint(ext) {
				t.Fatalf("extend range(%d) by %d differs from range(%d)", size, k, size+k)
			}
		}
	}
	if _, err := ExtendRange(nil, 3, nil); err == nil {
		t.Fatal("extend range accepted a wrong-length range")
	}
}

func TestReopenKeepsState(t *testing.T) {
	dir := t.TempDir()
	j := openT(t, dir)
	appendN(t, j, 37, "a")
	size, last := j.Size(), j.LastLeaf()
	root, err := j.Root(size)
	if err != nil {
		t.Fatal(err)
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := j.Append(context.Background(), Entry{Build: build("late")}); !errors.Is(err, ErrClosed) {
		t.Fatalf("append after close: %v", err)
	}
	if _, err := j.Record(0); !errors.Is(err, ErrClosed) {
		t.Fatalf("record after close: %v", err)
	}

	j = openT(t, dir)
	defer j.Close()
	if j.Size() != size || j.LastLeaf() != last {
		t.Fatalf("reopen: size %d last %x, want %d %x", j.Size(), j.LastLeaf(), size, last)
	}
	if r, _ := j.Root(size); r != root {
		t.Fatalf("reopen: root %x, want %x", r, root)
	}
	var gotPrev [32]byte
	a, err := j.Append(context.Background(), Entry{Build: func(seq uint64, prev [32]byte) ([]byte, error) {
		gotPrev = prev
		return build("after")(seq, prev)
	}})
	if err != nil || a.Seq != size || gotPrev != last {
		t.Fatalf("append after reopen: %+v %v prev %x", a, err, gotPrev)
	}
	if err := j.Scrub(context.Background(), checkEmbedded); err != nil {
		t.Fatal(err)
	}
}
