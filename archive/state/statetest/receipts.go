package statetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/edgeseal/edgeseal/archive/state"
)

// receipts: a bundle recorded without its receipt (its Pending kept)
// gets it from AdvanceReceipt, which raises the chain's receipt fields
// only to a larger size; a repeat changes nothing, the first receipt
// stays, an unknown bundle (or another device's, or another log
// index) is ErrNotFound, an empty receipt is refused; an Advance never
// lowers the receipt fields and returns the stored ones; all of it
// survives a reopen.
func receipts(t *testing.T, open Opener) {
	ctx := context.Background()
	s := open(t, "l")
	d := "site/dev-r"
	to := chain(d, 1, 1) // receipt fields: log index 10, size 11
	to.Accepted = []state.Accepted{{Bundle: h("r1"), Device: d, LogIndex: 20, Pending: []byte("to finish r1")}}
	c, err := s.Advance(ctx, d, 0, to)
	must(t, err)
	got, err := s.Bundle(ctx, h("r1"))
	must(t, err)
	if len(got.Receipt) != 0 || string(got.Pending) != "to finish r1" || got.LogIndex != 20 || got.Device != d {
		t.Fatalf("bundle recorded without its receipt: %+v", got)
	}
	rc := state.Receipt{Bundle: h("r1"), Device: d, LogIndex: 20, Receipt: []byte("receipt r1"), Size: 21, Root: h("cp21")}
	for range 2 { // a repeat changes nothing
		acc, err := s.AdvanceReceipt(ctx, rc)
		must(t, err)
		if string(acc.Receipt) != "receipt r1" || acc.Pending != nil {
			t.Fatalf("AdvanceReceipt returned %+v", acc)
		}
		wantReceipt(t, s, d, 20, 21, h("cp21"))
	}
	// Another receipt of the same bundle: the first stays; a smaller
	// size never lowers the chain's.
	other := rc
	other.Receipt, other.Size, other.Root = []byte("fresh r1"), 15, h("cp15")
	acc, err := s.AdvanceReceipt(ctx, other)
	must(t, err)
	if string(acc.Receipt) != "receipt r1" {
		t.Fatalf("a second receipt replaced the first: %q", acc.Receipt)
	}
	wantReceipt(t, s, d, 20, 21, h("cp21"))
	// Unknown bundles, another device's, another log index: ErrNotFound.
	for _, bad := range []state.Receipt{
		{Bundle: h("none"), Device: d, LogIndex: 20, Receipt: []byte("x"), Size: 99},
		{Bundle: h("r1"), Device: "site/other", LogIndex: 20, Receipt: []byte("x"), Size: 99},
		{Bundle: h("r1"), Device: d, LogIndex: 21, Receipt: []byte("x"), Size: 99},
	} {
		if _, err := s.AdvanceReceipt(ctx, bad); !errors.Is(err, state.ErrNotFound) {
			t.Fatalf("AdvanceReceipt of %+v: %v, want ErrNotFound", bad, err)
		}
	}
	wantReceipt(t, s, d, 20, 21, h("cp21"))
	if _, err := s.AdvanceReceipt(ctx, state.Receipt{Bundle: h("r1"), Device: d, LogIndex: 20, Size: 99}); err == nil || errors.Is(err, state.ErrNotFound) {
		t.Fatalf("AdvanceReceipt without a receipt: %v, want refused", err)
	}
	// An Advance from a chain read before the receipt (smaller receipt
	// fields) keeps the stored ones and returns them.
	next := chain(d, 1, 2) // receipt fields: log index 20, size 21 ... set smaller
	next.ReceiptLogIndex, next.ReceiptSize, next.ReceiptRoot = 10, 11, h("cp11")
	next.Accepted = []state.Accepted{{Bundle: h("r2"), Device: d, LogIndex: 30, Pending: []byte("to finish r2")}}
	c, err = s.Advance(ctx, d, c.Version, next)
	must(t, err)
	if c.ReceiptLogIndex != 20 || c.ReceiptSize != 21 || c.ReceiptRoot != h("cp21") {
		t.Fatalf("Advance returned receipt fields %d %d, want the stored 20 21", c.ReceiptLogIndex, c.ReceiptSize)
	}
	wantReceipt(t, s, d, 20, 21, h("cp21"))
	// A larger one raises them.
	_, err = s.AdvanceReceipt(ctx, state.Receipt{Bundle: h("r2"), Device: d, LogIndex: 30, Receipt: []byte("receipt r2"), Size: 31, Root: h("cp31")})
	must(t, err)
	wantReceipt(t, s, d, 30, 31, h("cp31"))
	// An Advance with larger receipt fields raises them too.
	last := chain(d, 1, 3)
	last.ReceiptLogIndex, last.ReceiptSize, last.ReceiptRoot = 40, 41, h("cp41")
	c, err = s.Advance(ctx, d, c.Version, last)
	must(t, err)
	if c.ReceiptSize != 41 {
		t.Fatalf("Advance returned receipt size %d, want 41", c.ReceiptSize)
	}
	must(t, s.Close())
	s = open(t, "l")
	defer s.Close()
	wantReceipt(t, s, d, 40, 41, h("cp41"))
	for name, want := range map[string]string{"r1": "receipt r1", "r2": "receipt r2"} {
		got, err := s.Bundle(ctx, h(name))
		must(t, err)
		if string(got.Receipt) != want || got.Pending != nil {
			t.Fatalf("bundle %s after reopen: receipt %q pending %q", name, got.Receipt, got.Pending)
		}
	}
}

func wantReceipt(t *testing.T, s state.Store, d string, logIndex, size uint64, root [32]byte) {
	t.Helper()
	c, err := s.Get(context.Background(), d)
	must(t, err)
	if c.ReceiptLogIndex != logIndex || c.ReceiptSize != size || c.ReceiptRoot != root {
		t.Fatalf("receipt fields %d %d %x, want %d %d %x", c.ReceiptLogIndex, c.ReceiptSize, c.ReceiptRoot[:4], logIndex, size, root[:4])
	}
}

// receiptsRace: concurrent AdvanceReceipts of a device's bundles, in any
// order, beside Advances of its chain (carrying smaller receipt fields):
// no error, every bundle keeps its receipt, and the chain's receipt
// fields end at the largest.
func receiptsRace(t *testing.T, s state.Store) {
	defer s.Close()
	ctx := context.Background()
	d := "site/dev-race"
	const n = 24
	to := chain(d, 1, 1)
	to.ReceiptLogIndex, to.ReceiptSize, to.ReceiptRoot = 0, 0, [32]byte{}
	for i := range n {
		to.Accepted = append(to.Accepted, state.Accepted{Bundle: h(fmt.Sprint("race", i)), Device: d, LogIndex: uint64(100 + i)})
	}
	c, err := s.Advance(ctx, d, 0, to)
	must(t, err)
	var wg sync.WaitGroup
	errs := make(chan error, 2*n)
	for i := range n {
		wg.Go(func() {
			r := state.Receipt{Bundle: h(fmt.Sprint("race", i)), Device: d, LogIndex: uint64(100 + i),
				Receipt: []byte(fmt.Sprint("receipt ", i)), Size: uint64(200 + i), Root: h(fmt.Sprint("cp", i))}
			if _, err := s.AdvanceReceipt(ctx, r); err != nil {
				errs <- err
			}
		})
	}
	wg.Go(func() { // advances carrying stale receipt fields
		from := c
		for k := range n / 2 {
			next := chain(d, 1, uint64(2+k))
			next.ReceiptLogIndex, next.ReceiptSize = 1, 1
			res, err := s.Advance(ctx, d, from.Version, next)
			if err != nil {
				errs <- err
				return
			}
			from = res
		}
	})
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	wantReceipt(t, s, d, 100+n-1, 200+n-1, h(fmt.Sprint("cp", n-1)))
	for i := range n {
		got, err := s.Bundle(ctx, h(fmt.Sprint("race", i)))
		must(t, err)
		if !bytes.Equal(got.Receipt, []byte(fmt.Sprint("receipt ", i))) {
			t.Fatalf("bundle %d: receipt %q", i, got.Receipt)
		}
	}
}
