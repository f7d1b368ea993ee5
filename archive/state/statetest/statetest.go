// Package statetest is the conformance suite of state.Store: every
// implementation (Badger, MariaDB) runs Run against its own opener.
package statetest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgeseal/edgeseal/archive/state"
)

// Opener opens the store named name (the same name reopens the same
// data: Open after Close sees what was advanced). The suite closes what
// it opens; a Cleanup of the opener's may close it again.
type Opener func(t *testing.T, name string) state.Store

// Run runs the conformance suite.
func Run(t *testing.T, open Opener) {
	t.Run("NotFound", func(t *testing.T) { notFound(t, open(t, "a")) })
	t.Run("Advance", func(t *testing.T) { advance(t, open(t, "b")) })
	t.Run("Conflict", func(t *testing.T) { conflict(t, open(t, "c")) })
	t.Run("Checkpoints", func(t *testing.T) { checkpoints(t, open(t, "d")) })
	t.Run("RaceOneDevice", func(t *testing.T) { raceOne(t, open(t, "e")) })
	t.Run("RaceDevices", func(t *testing.T) { raceMany(t, open(t, "f")) })
	t.Run("Reopen", func(t *testing.T) { reopen(t, open) })
	t.Run("Limits", func(t *testing.T) { limits(t, open(t, "h")) })
	t.Run("Bundles", func(t *testing.T) { bundles(t, open) })
	t.Run("Lease", func(t *testing.T) { lease(t, open(t, "j")) })
	t.Run("LeaseOrder", func(t *testing.T) { leaseOrder(t, open(t, "k")) })
	t.Run("Receipts", func(t *testing.T) { receipts(t, open) })
	t.Run("ReceiptsRace", func(t *testing.T) { receiptsRace(t, open(t, "m")) })
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func h(s string) [32]byte { return sha256.Sum256([]byte(s)) }

// chain is the chain after n bundles of epoch e of device d.
func chain(d string, e, n uint64) state.Chain {
	return state.Chain{
		Epoch: e, Bundles: n, Head: h(fmt.Sprint(d, e, n)), LogIndex: 10 * n, Size: 5 * n, Root: h(fmt.Sprint("root", d, e, n)),
		Verify:          []byte(fmt.Sprintf(`{"checkpoint":"%s %d %d"}`, d, e, n)),
		ReceiptLogIndex: 10 * n, ReceiptSize: 10*n + 1, ReceiptRoot: h(fmt.Sprint("archive", n)),
	}
}

func same(t *testing.T, got, want state.Chain) {
	t.Helper()
	want.Version = got.Version
	if got.Epoch != want.Epoch || got.Bundles != want.Bundles || got.Head != want.Head || got.LogIndex != want.LogIndex ||
		got.Size != want.Size || got.Root != want.Root || !bytes.Equal(got.Verify, want.Verify) ||
		got.ReceiptLogIndex != want.ReceiptLogIndex || got.ReceiptSize != want.ReceiptSize || got.ReceiptRoot != want.ReceiptRoot {
		t.Fatalf("chain %+v, want %+v", got, want)
	}
}

func notFound(t *testing.T, s state.Store) {
	defer s.Close()
	ctx := context.Background()
	if _, err := s.Get(ctx, "site/none"); !errors.Is(err, state.ErrNotFound) {
		t.Fatalf("Get of a device never advanced: %v, want ErrNotFound", err)
	}
	if _, err := s.Checkpoint(ctx, "site/none", 1, 3); !errors.Is(err, state.ErrNotFound) {
		t.Fatalf("Checkpoint never recorded: %v, want ErrNotFound", err)
	}
	// Another device's rows are not this one's.
	_, err := s.Advance(ctx, "site/a", 0, chain("site/a", 1, 1), state.Checkpoint{Epoch: 1, Size: 5, Root: h("r")})
	must(t, err)
	if _, err := s.Get(ctx, "site/ab"); !errors.Is(err, state.ErrNotFound) {
		t.Fatalf("Get of a device named by a prefix: %v, want ErrNotFound", err)
	}
	if _, err := s.Checkpoint(ctx, "site/a", 2, 5); !errors.Is(err, state.ErrNotFound) {
		t.Fatalf("Checkpoint of another epoch: %v, want ErrNotFound", err)
	}
}

func advance(t *testing.T, s state.Store) {
	defer s.Close()
	ctx := context.Background()
	d := "site/dev-1"
	var v uint64
	for n := uint64(1); n <= 5; n++ {
		got, err := s.Advance(ctx, d, v, chain(d, 1, n))
		must(t, err)
		if got.Version != v+1 {
			t.Fatalf("version after advance from %d: %d", v, got.Version)
		}
		v = got.Version
		stored, err := s.Get(ctx, d)
		must(t, err)
		if stored.Version != v {
			t.Fatalf("stored version %d, Advance returned %d", stored.Version, v)
		}
		same(t, stored, chain(d, 1, n))
	}
	// A chain without a verify state (a rekey's fresh epoch) reads back as one.
	to := state.Chain{Epoch: 2, ReceiptLogIndex: 99, ReceiptSize: 100}
	_, err := s.Advance(ctx, d, v, to)
	must(t, err)
	stored, err := s.Get(ctx, d)
	must(t, err)
	same(t, stored, to)
}

func conflict(t *testing.T, s state.Store) {
	defer s.Close()
	ctx := context.Background()
	d := "site/dev-c"
	first, err := s.Advance(ctx, d, 0, chain(d, 1, 1))
	must(t, err)
	// A second "first" advance: the device has a chain now.
	_, err = s.Advance(ctx, d, 0, chain(d, 1, 9))
	ce, ok := errors.AsType[*state.ConflictError](err)
	if !ok {
		t.Fatalf("advance from nothing over a stored chain: %v, want *ConflictError", err)
	}
	if ce.Stored == nil || ce.Stored.Version != first.Version || ce.Device != d || ce.Expected != 0 {
		t.Fatalf("conflict %+v, want the stored version %d", ce, first.Version)
	}
	same(t, *ce.Stored, chain(d, 1, 1))
	// From a stale version.
	second, err := s.Advance(ctx, d, first.Version, chain(d, 1, 2))
	must(t, err)
	_, err = s.Advance(ctx, d, first.Version, chain(d, 1, 3), state.Checkpoint{Epoch: 1, Size: 15, Root: h("lost")})
	ce, ok = errors.AsType[*state.ConflictError](err)
	if !ok || ce.Stored == nil || ce.Stored.Version != second.Version {
		t.Fatalf("advance from a stale version: %v, want *ConflictError with version %d", err, second.Version)
	}
	same(t, *ce.Stored, chain(d, 1, 2))
	// Nothing of the losing advance was written, its checkpoint neither.
	if _, err := s.Checkpoint(ctx, d, 1, 15); !errors.Is(err, state.ErrNotFound) {
		t.Fatalf("checkpoint of a refused advance: %v, want ErrNotFound", err)
	}
	// From a version of a device that has none.
	_, err = s.Advance(ctx, "site/other", 3, chain("site/other", 1, 1))
	ce, ok = errors.AsType[*state.ConflictError](err)
	if !ok || ce.Stored != nil {
		t.Fatalf("advance from version 3 of a device without a chain: %v, want *ConflictError with nothing stored", err)
	}
	if _, err := s.Get(ctx, "site/other"); !errors.Is(err, state.ErrNotFound) {
		t.Fatalf("Get after a refused first advance: %v", err)
	}
}

func checkpoints(t *testing.T, s state.Store) {
	defer s.Close()
	ctx := context.Background()
	d := "site/dev-k"
	cps := []state.Checkpoint{{Epoch: 1, Size: 3, Root: h("3"), Bundle: h("b3")}, {Epoch: 1, Size: 7, Root: h("7"), Bundle: h("b7")}}
	c, err := s.Advance(ctx, d, 0, chain(d, 1, 2), cps...)
	must(t, err)
	_, err = s.Advance(ctx, d, c.Version, chain(d, 2, 1), state.Checkpoint{Epoch: 2, Size: 3, Root: h("e2"), Bundle: h("b-e2")})
	must(t, err)
	for _, want := range append(cps, state.Checkpoint{Epoch: 2, Size: 3, Root: h("e2"), Bundle: h("b-e2")}) {
		got, err := s.Checkpoint(ctx, d, want.Epoch, want.Size)
		must(t, err)
		if got != want {
			t.Fatalf("checkpoint %d of epoch %d: %+v, want %+v", want.Size, want.Epoch, got, want)
		}
	}
	if _, err := s.Checkpoint(ctx, d, 1, 5); !errors.Is(err, state.ErrNotFound) {
		t.Fatalf("checkpoint of a size not accepted: %v, want ErrNotFound", err)
	}
}

// raceOne: workers advance one device from what they read; of those
// starting from one version exactly one wins, and every step is taken
// once.
func raceOne(t *testing.T, s state.Store) {
	defer s.Close()
	ctx := context.Background()
	d := "site/raced"
	const workers, steps = 6, 20
	var mu sync.Mutex
	wins := map[uint64]int{} // version advanced from -> winners
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for {
				cur, err := s.Get(ctx, d)
				var from uint64
				switch {
				case errors.Is(err, state.ErrNotFound):
				case err != nil:
					t.Error(err)
					return
				default:
					from = cur.Version
				}
				if from >= steps {
					return
				}
				to := chain(d, 1, from+1)
				to.Verify = []byte(fmt.Sprintf(`{"worker":%d}`, w))
				got, err := s.Advance(ctx, d, from, to, state.Checkpoint{Epoch: 1, Size: from + 1, Root: h(fmt.Sprint(w)), Bundle: h(fmt.Sprint(w))})
				if ce, ok := errors.AsType[*state.ConflictError](err); ok {
					if ce.Stored == nil || ce.Stored.Version <= from {
						t.Errorf("conflict from %d carries %+v: the stored chain must be newer", from, ce.Stored)
						return
					}
					continue
				}
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				wins[from]++
				mu.Unlock()
				// The winner's checkpoint is the one recorded.
				cp, err := s.Checkpoint(ctx, d, 1, got.Version)
				if err != nil || cp.Root != h(fmt.Sprint(w)) {
					t.Errorf("checkpoint %d after worker %d won: %+v %v", got.Version, w, cp, err)
				}
			}
		})
	}
	wg.Wait()
	for v := uint64(0); v < steps; v++ {
		if wins[v] != 1 {
			t.Fatalf("advances from version %d that won: %d, want exactly 1 (%v)", v, wins[v], wins)
		}
	}
	got, err := s.Get(ctx, d)
	must(t, err)
	if got.Version != steps || got.Bundles != steps {
		t.Fatalf("final chain version %d bundles %d, want %d", got.Version, got.Bundles, steps)
	}
}

// raceMany: one worker a device, all at once: none ever conflicts.
func raceMany(t *testing.T, s state.Store) {
	defer s.Close()
	ctx := context.Background()
	const devices, steps = 8, 15
	var wg sync.WaitGroup
	for i := range devices {
		d := fmt.Sprintf("site/dev-%02d", i)
		wg.Go(func() {
			var v uint64
			for n := uint64(1); n <= steps; n++ {
				got, err := s.Advance(ctx, d, v, chain(d, 1, n), state.Checkpoint{Epoch: 1, Size: 5 * n, Root: h(d), Bundle: h(fmt.Sprint(n))})
				if err != nil {
					t.Errorf("%s step %d: %v (another device's advances must not interfere)", d, n, err)
					return
				}
				v = got.Version
			}
		})
	}
	wg.Wait()
	for i := range devices {
		d := fmt.Sprintf("site/dev-%02d", i)
		got, err := s.Get(ctx, d)
		must(t, err)
		same(t, got, chain(d, 1, steps))
		if got.Version != steps {
			t.Fatalf("%s version %d, want %d", d, got.Version, steps)
		}
	}
}

func reopen(t *testing.T, open Opener) {
	ctx := context.Background()
	s := open(t, "g")
	d := "site/kept"
	c, err := s.Advance(ctx, d, 0, chain(d, 1, 1), state.Checkpoint{Epoch: 1, Size: 5, Root: h("5"), Bundle: h("b5")})
	must(t, err)
	c, err = s.Advance(ctx, d, c.Version, chain(d, 1, 2))
	must(t, err)
	must(t, s.Close())
	s = open(t, "g")
	defer s.Close()
	got, err := s.Get(ctx, d)
	must(t, err)
	if got.Version != c.Version {
		t.Fatalf("version after reopen %d, want %d", got.Version, c.Version)
	}
	same(t, got, chain(d, 1, 2))
	cp, err := s.Checkpoint(ctx, d, 1, 5)
	must(t, err)
	if cp.Root != h("5") || cp.Bundle != h("b5") {
		t.Fatalf("checkpoint after reopen %+v", cp)
	}
	// It goes on from the reopened version, and not from the old one.
	if _, err := s.Advance(ctx, d, c.Version-1, chain(d, 1, 3)); !isConflict(err) {
		t.Fatalf("advance from a version before the reopen: %v", err)
	}
	_, err = s.Advance(ctx, d, c.Version, chain(d, 1, 3))
	must(t, err)
}

func isConflict(err error) bool {
	_, ok := errors.AsType[*state.ConflictError](err)
	return ok
}

func limits(t *testing.T, s state.Store) {
	defer s.Close()
	ctx := context.Background()
	long := "site/" + strings.Repeat("x", state.MaxDevice)
	if _, err := s.Advance(ctx, long, 0, chain(long, 1, 1)); err == nil || isConflict(err) {
		t.Fatalf("a device name over %d bytes: %v, want refused", state.MaxDevice, err)
	}
	if _, err := s.Advance(ctx, "", 0, chain("", 1, 1)); err == nil || isConflict(err) {
		t.Fatalf("an empty device name: %v, want refused", err)
	}
	big := chain("site/big", 1, 1)
	big.Verify = bytes.Repeat([]byte("v"), state.MaxVerify+1)
	if _, err := s.Advance(ctx, "site/big", 0, big); err == nil || isConflict(err) {
		t.Fatalf("a verify state over %d bytes: %v, want refused", state.MaxVerify, err)
	}
	max := chain("site/big", 1, 1)
	max.Verify = bytes.Repeat([]byte("v"), state.MaxVerify)
	name := "s/" + strings.Repeat("y", state.MaxDevice-2)
	_, err := s.Advance(ctx, name, 0, max)
	must(t, err)
	got, err := s.Get(ctx, name)
	must(t, err)
	same(t, got, max)
}

// bundles: the accepted bundles an Advance records are found by digest,
// the first record of a digest stays, a refused Advance records none,
// and they are kept across a reopen.
func bundles(t *testing.T, open Opener) {
	ctx := context.Background()
	s := open(t, "i")
	d := "site/dev-b"
	if _, err := s.Bundle(ctx, h("none")); !errors.Is(err, state.ErrNotFound) {
		t.Fatalf("Bundle never recorded: %v, want ErrNotFound", err)
	}
	acc := func(name string, idx uint64) state.Accepted {
		return state.Accepted{Bundle: h(name), Device: d, LogIndex: idx, Receipt: []byte("receipt of " + name)}
	}
	to := chain(d, 1, 1)
	to.Accepted = []state.Accepted{acc("b1", 4), acc("b2", 5)}
	c, err := s.Advance(ctx, d, 0, to)
	must(t, err)
	if c.Accepted != nil {
		t.Fatalf("Advance returned its accepted bundles: %+v", c.Accepted)
	}
	if got, err := s.Get(ctx, d); err != nil || got.Accepted != nil {
		t.Fatalf("Get: %+v %v, want no accepted bundles", got, err)
	}
	// A refused Advance records nothing.
	lost := chain(d, 1, 2)
	lost.Accepted = []state.Accepted{acc("lost", 9)}
	if _, err := s.Advance(ctx, d, 0, lost); !isConflict(err) {
		t.Fatalf("advance from a stale version: %v", err)
	}
	if _, err := s.Bundle(ctx, h("lost")); !errors.Is(err, state.ErrNotFound) {
		t.Fatalf("bundle of a refused advance: %v, want ErrNotFound", err)
	}
	// A second record of b1 does not replace the first.
	again := chain(d, 1, 2)
	again.Accepted = []state.Accepted{{Bundle: h("b1"), Device: d, LogIndex: 77, Receipt: []byte("another")}, acc("b3", 6)}
	_, err = s.Advance(ctx, d, c.Version, again)
	must(t, err)
	// What no store keeps is refused.
	bad := chain(d, 1, 3)
	bad.Accepted = []state.Accepted{{Bundle: h("x"), Device: "site/other", LogIndex: 1, Receipt: []byte("r")}}
	if _, err := s.Advance(ctx, d, c.Version+1, bad); err == nil || isConflict(err) {
		t.Fatalf("an accepted bundle of another device: %v, want refused", err)
	}
	bad.Accepted = []state.Accepted{{Bundle: h("x"), Device: d, LogIndex: 1, Receipt: []byte("r"), Pending: []byte("p")}}
	if _, err := s.Advance(ctx, d, c.Version+1, bad); err == nil || isConflict(err) {
		t.Fatalf("an accepted bundle with a receipt and pending: %v, want refused", err)
	}
	bad.Accepted = []state.Accepted{{Bundle: h("x"), Device: d, LogIndex: 1, Pending: make([]byte, state.MaxPending+1)}}
	if _, err := s.Advance(ctx, d, c.Version+1, bad); err == nil || isConflict(err) {
		t.Fatalf("an accepted bundle with %d bytes pending: %v, want refused", state.MaxPending+1, err)
	}
	must(t, s.Close())
	s = open(t, "i")
	defer s.Close()
	for _, want := range []state.Accepted{acc("b1", 4), acc("b2", 5), acc("b3", 6)} {
		got, err := s.Bundle(ctx, want.Bundle)
		must(t, err)
		if got.Bundle != want.Bundle || got.Device != want.Device || got.LogIndex != want.LogIndex || !bytes.Equal(got.Receipt, want.Receipt) {
			t.Fatalf("bundle %x: %+v, want %+v", want.Bundle[:4], got, want)
		}
	}
}

// lease: one holder at a time; a Lock that cannot have it ends with its
// context; another device's lease is not held up; Release twice is
// harmless, and the lease is free after it.
func lease(t *testing.T, s state.Store) {
	defer s.Close()
	ctx := context.Background()
	d := "site/leased"
	l, err := s.Lock(ctx, d)
	must(t, err)
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	start := time.Now()
	_, err = s.Lock(short, d)
	cancel()
	if err == nil || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Lock of a held lease: %v, want the context's deadline", err)
	}
	if el := time.Since(start); el > 5*time.Second {
		t.Fatalf("Lock of a held lease waited %v past its deadline", el)
	}
	other, err := s.Lock(ctx, "site/other")
	must(t, err)
	must(t, other.Release())
	must(t, l.Release())
	must(t, l.Release())
	l2, err := s.Lock(ctx, d)
	must(t, err)
	must(t, l2.Release())
}

// leaseOrder: workers that each take the lease, read, advance and
// release never conflict: the lease orders them.
func leaseOrder(t *testing.T, s state.Store) {
	defer s.Close()
	ctx := context.Background()
	d := "site/ordered"
	const workers, steps = 4, 6
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for range steps {
				l, err := s.Lock(ctx, d)
				if err != nil {
					t.Error(err)
					return
				}
				cur, err := s.Get(ctx, d)
				if err != nil && !errors.Is(err, state.ErrNotFound) {
					t.Error(err)
				}
				if _, err := s.Advance(ctx, d, cur.Version, chain(d, 1, cur.Version+1)); err != nil {
					t.Errorf("advance under the lease: %v", err)
				}
				must(t, l.Release())
			}
		})
	}
	wg.Wait()
	got, err := s.Get(ctx, d)
	must(t, err)
	if got.Version != workers*steps {
		t.Fatalf("version %d after %d leased advances", got.Version, workers*steps)
	}
}
