// Package indextest is the conformance suite of store.IndexStore: every
// implementation of the ordered index (the Badger store.Index, a later SQL
// one) runs Run against its own Open.
package indextest

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"testing"

	"github.com/edgeseal/edgeseal/store"
)

// Opener opens the index named name (the same name reopens the same
// data); the suite closes what it opens.
type Opener func(t *testing.T, name string) store.IndexStore

// Run runs the conformance suite.
func Run(t *testing.T, open Opener) {
	t.Run("PutGetDelete", func(t *testing.T) { putGetDelete(t, open(t, "a")) })
	t.Run("ScanOrderRangeLimit", func(t *testing.T) { scanOrder(t, open(t, "b")) })
	t.Run("Counters", func(t *testing.T) { counters(t, open(t, "c")) })
	t.Run("AtomicBatch", func(t *testing.T) { atomicBatch(t, open(t, "d")) })
	t.Run("Reopen", func(t *testing.T) { reopen(t, open) })
	t.Run("Limits", func(t *testing.T) { limits(t, open(t, "f")) })
	t.Run("Expect", func(t *testing.T) { expect(t, open(t, "g")) })
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func put(k, v string) store.IndexOp {
	return store.IndexOp{Kind: store.IndexPut, Key: []byte(k), Value: []byte(v)}
}

func putGetDelete(t *testing.T, x store.IndexStore) {
	defer x.Close()
	ctx := context.Background()
	if _, err := x.Get(ctx, []byte("k")); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Get of an absent key: %v, want ErrNotFound", err)
	}
	must(t, x.Write(ctx, []store.IndexOp{put("k", "v1"), put("k", "v2"), put("e", "")}))
	v, err := x.Get(ctx, []byte("k"))
	must(t, err)
	if string(v) != "v2" {
		t.Fatalf("Get = %q, want the last Put of the batch v2", v)
	}
	if v, err := x.Get(ctx, []byte("e")); err != nil || len(v) != 0 {
		t.Fatalf("empty value: %q %v", v, err)
	}
	v[0] = 'X' // a copy: the stored value is unchanged
	if v2, _ := x.Get(ctx, []byte("k")); string(v2) != "v2" {
		t.Fatalf("Get returned the stored bytes, not a copy")
	}
	must(t, x.Write(ctx, []store.IndexOp{{Kind: store.IndexDelete, Key: []byte("k")}, {Kind: store.IndexDelete, Key: []byte("never")}}))
	if _, err := x.Get(ctx, []byte("k")); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Get after Delete: %v", err)
	}
}

func keys(t *testing.T, x store.IndexStore, r store.IndexRange) []string {
	t.Helper()
	var out []string
	must(t, x.Scan(context.Background(), r, func(k, v []byte) bool {
		if string(v) != "v"+string(k) {
			t.Errorf("value of %q = %q", k, v)
		}
		out = append(out, string(k))
		return true
	}))
	return out
}

func scanOrder(t *testing.T, x store.IndexStore) {
	defer x.Close()
	ctx := context.Background()
	var ops []store.IndexOp
	for _, k := range []string{"b2", "a", "b1", "b\xff", "c", "b", "b10", "\xff\xff"} {
		ops = append(ops, put(k, "v"+k))
	}
	must(t, x.Write(ctx, ops))
	eq := func(name string, got []string, want ...string) {
		t.Helper()
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%s = %q, want %q", name, got, want)
		}
	}
	eq("all", keys(t, x, store.IndexRange{}), "a", "b", "b1", "b10", "b2", "b\xff", "c", "\xff\xff")
	eq("prefix b", keys(t, x, store.IndexRange{Lo: []byte("b"), Hi: store.PrefixEnd([]byte("b"))}), "b", "b1", "b10", "b2", "b\xff")
	eq("[b1,b2)", keys(t, x, store.IndexRange{Lo: []byte("b1"), Hi: []byte("b2")}), "b1", "b10")
	eq("reverse prefix b", keys(t, x, store.IndexRange{Lo: []byte("b"), Hi: store.PrefixEnd([]byte("b")), Reverse: true}), "b\xff", "b2", "b10", "b1", "b")
	eq("reverse [b1,b2)", keys(t, x, store.IndexRange{Lo: []byte("b1"), Hi: []byte("b2"), Reverse: true}), "b10", "b1")
	eq("reverse no hi", keys(t, x, store.IndexRange{Lo: []byte("c"), Reverse: true}), "\xff\xff", "c")
	eq("limit", keys(t, x, store.IndexRange{Lo: []byte("b"), Limit: 2}), "b", "b1")
	eq("reverse limit", keys(t, x, store.IndexRange{Reverse: true, Limit: 1}), "\xff\xff")
	eq("empty range", keys(t, x, store.IndexRange{Lo: []byte("b3"), Hi: []byte("b4")}))
	if store.PrefixEnd([]byte("\xff\xff")) != nil {
		t.Errorf("PrefixEnd of all 0xff is not nil")
	}
	var n int
	must(t, x.Scan(ctx, store.IndexRange{}, func(k, v []byte) bool { n++; return n < 3 }))
	if n != 3 {
		t.Errorf("fn returning false stopped after %d keys, want 3", n)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := x.Scan(cctx, store.IndexRange{}, func(k, v []byte) bool { return true }); !errors.Is(err, context.Canceled) {
		t.Errorf("Scan with a cancelled context: %v", err)
	}
}

func counter(t *testing.T, x store.IndexStore, k string) int64 {
	t.Helper()
	v, err := x.Get(context.Background(), []byte(k))
	must(t, err)
	if len(v) != 8 {
		t.Fatalf("counter %q is %d bytes", k, len(v))
	}
	return int64(binary.BigEndian.Uint64(v))
}

func counters(t *testing.T, x store.IndexStore) {
	defer x.Close()
	ctx := context.Background()
	add := func(k string, d int64) store.IndexOp {
		return store.IndexOp{Kind: store.IndexAdd, Key: []byte(k), Delta: d}
	}
	must(t, x.Write(ctx, []store.IndexOp{add("n", 3), add("n", 4), add("m", -2)}))
	if c := counter(t, x, "n"); c != 7 {
		t.Fatalf("n = %d, want 7 (the batch sees its own adds)", c)
	}
	must(t, x.Write(ctx, []store.IndexOp{add("n", 1), add("m", 2)}))
	if c, m := counter(t, x, "n"), counter(t, x, "m"); c != 8 || m != 0 {
		t.Fatalf("n, m = %d, %d, want 8, 0", c, m)
	}
	must(t, x.Write(ctx, []store.IndexOp{put("bad", "abc")}))
	if err := x.Write(ctx, []store.IndexOp{put("ok", "x"), add("bad", 1)}); err == nil {
		t.Fatal("adding to a value that is not a counter succeeded")
	}
	if _, err := x.Get(ctx, []byte("ok")); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a failed batch left its Put: %v", err)
	}
}

func atomicBatch(t *testing.T, x store.IndexStore) {
	defer x.Close()
	ctx := context.Background()
	big := bytes.Repeat([]byte("x"), store.MaxIndexKeyLen+1)
	err := x.Write(ctx, []store.IndexOp{put("first", "1"), {Kind: store.IndexPut, Key: big, Value: []byte("v")}})
	if _, ok := errors.AsType[*store.IndexTooLargeError](err); !ok {
		t.Fatalf("a key over MaxIndexKeyLen: %v, want *IndexTooLargeError", err)
	}
	if _, err := x.Get(ctx, []byte("first")); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a refused batch applied part: %v", err)
	}
}

func reopen(t *testing.T, open Opener) {
	ctx := context.Background()
	x := open(t, "e")
	must(t, x.Write(ctx, []store.IndexOp{put("k1", "vk1"), put("k2", "vk2"), {Kind: store.IndexAdd, Key: []byte("n"), Delta: 5}}))
	must(t, x.Close())
	y := open(t, "e")
	defer y.Close()
	if got := keys(t, y, store.IndexRange{Lo: []byte("k"), Hi: store.PrefixEnd([]byte("k"))}); fmt.Sprint(got) != "[k1 k2]" {
		t.Fatalf("after reopen: %q", got)
	}
	if c := counter(t, y, "n"); c != 5 {
		t.Fatalf("counter after reopen = %d", c)
	}
}

func limits(t *testing.T, x store.IndexStore) {
	defer x.Close()
	ctx := context.Background()
	for name, op := range map[string]store.IndexOp{
		"empty key":  {Kind: store.IndexPut, Key: nil, Value: []byte("v")},
		"long value": {Kind: store.IndexPut, Key: []byte("k"), Value: make([]byte, store.MaxIndexValueLen+1)},
	} {
		if err := x.Write(ctx, []store.IndexOp{op}); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	// A batch over MaxBatchBytes is refused whole.
	var ops []store.IndexOp
	val := make([]byte, 64<<10)
	for i := 0; i*len(val) <= x.MaxBatchBytes(); i++ {
		ops = append(ops, store.IndexOp{Kind: store.IndexPut, Key: fmt.Appendf(nil, "big%06d", i), Value: val})
	}
	if _, ok := errors.AsType[*store.IndexTooLargeError](x.Write(ctx, ops)); !ok {
		t.Errorf("a batch over MaxBatchBytes was not refused with *IndexTooLargeError")
	}
	// Just under it is taken.
	var fit []store.IndexOp
	for i := 0; (i+2)*(len(val)+64) < x.MaxBatchBytes(); i++ {
		fit = append(fit, store.IndexOp{Kind: store.IndexPut, Key: fmt.Appendf(nil, "fit%06d", i), Value: val})
	}
	must(t, x.Write(ctx, fit))
}

func expect(t *testing.T, x store.IndexStore) {
	defer x.Close()
	ctx := context.Background()
	exp := func(k string, v []byte) store.IndexOp {
		return store.IndexOp{Kind: store.IndexExpect, Key: []byte(k), Value: v}
	}
	conflict := func(name string, ops ...store.IndexOp) {
		t.Helper()
		err := x.Write(ctx, append(ops, put("side", name)))
		if ce, ok := errors.AsType[*store.IndexConflictError](err); !ok || string(ce.Key) != "w" {
			t.Fatalf("%s: %v, want *IndexConflictError on key w", name, err)
		}
		if v, err := x.Get(ctx, []byte("side")); err == nil && string(v) == name {
			t.Fatalf("%s: a batch refused by its condition applied its Put", name)
		}
	}
	// Absent expected (nil), then a value, then the batch's own write.
	must(t, x.Write(ctx, []store.IndexOp{exp("w", nil), put("w", "1")}))
	conflict("absent expected, present", exp("w", nil))
	conflict("empty expected, 1 held", exp("w", []byte{}))
	conflict("2 expected, 1 held", exp("w", []byte("2")))
	must(t, x.Write(ctx, []store.IndexOp{exp("w", []byte("1")), put("w", "2"), exp("w", []byte("2"))}))
	conflict("the batch's earlier Put", put("w", "3"), exp("w", []byte("2")))
	if v, err := x.Get(ctx, []byte("w")); err != nil || string(v) != "2" {
		t.Fatalf("w = %q %v, want 2", v, err)
	}
	must(t, x.Write(ctx, []store.IndexOp{put("e", "")}))
	must(t, x.Write(ctx, []store.IndexOp{exp("e", []byte{}), {Kind: store.IndexDelete, Key: []byte("w")}, exp("w", nil)}))
	if _, err := x.Get(ctx, []byte("w")); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("after the delete: %v", err)
	}
}
