// Package tlogtest is the conformance suite every tlog.Log passes:
// indices, entries, signed checkpoints whose roots match the entries,
// inclusion and consistency proofs checked by bundle/merkle, reopening,
// bounds.
package tlogtest

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/edgeseal/edgeseal/archive/tlog"
	"github.com/edgeseal/edgeseal/bundle/merkle"
)

// Suite is a log implementation under test.
type Suite struct {
	// Open opens the log kept in dir (empty the first time), signed by
	// Signer; called again on the same dir after Close to reopen it.
	Open     func(t *testing.T, dir string, s note.Signer, v note.Verifier) tlog.Log
	Signer   note.Signer
	Verifier note.Verifier
}

// Keys returns a fresh Ed25519 note signer and its verifier named origin.
func Keys(t testing.TB, origin string) (note.Signer, note.Verifier) {
	t.Helper()
	skey, vkey, err := note.GenerateKey(rand.Reader, origin)
	if err != nil {
		t.Fatal(err)
	}
	s, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	v, err := note.NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	return s, v
}

// Run runs the suite.
func Run(t *testing.T, s Suite) {
	t.Run("Empty", func(t *testing.T) { testEmpty(t, s) })
	t.Run("AppendProveReopen", func(t *testing.T) { testAppendProveReopen(t, s) })
	t.Run("Bounds", func(t *testing.T) { testBounds(t, s) })
	t.Run("AppendBatch", func(t *testing.T) { testAppendBatch(t, s) })
}

// testAppendBatch: a batch gets consecutive indexes in its order (one
// appender), its entries read back, a checkpoint covers them; an entry
// over MaxEntrySize refuses the batch before anything is appended.
func testAppendBatch(t *testing.T, s Suite) {
	ctx := ctxT(t)
	l := s.Open(t, t.TempDir(), s.Signer, s.Verifier)
	defer closeLog(t, l)
	if _, err := l.Append(ctx, []byte("first")); err != nil {
		t.Fatal(err)
	}
	var es [][]byte
	for i := range 40 {
		es = append(es, fmt.Appendf(nil, "batch %d", i))
	}
	idx, err := l.AppendBatch(ctx, es)
	if err != nil || len(idx) != len(es) {
		t.Fatalf("AppendBatch: %v, %d indexes", err, len(idx))
	}
	for i, x := range idx {
		if x != uint64(1+i) {
			t.Fatalf("entry %d of the batch at index %d, want %d", i, x, 1+i)
		}
		got, err := l.Entry(ctx, x)
		if err != nil || string(got) != string(es[i]) {
			t.Fatalf("Entry(%d) = %q, %v; want %q", x, got, err, es[i])
		}
	}
	c, err := l.AwaitCheckpoint(ctx, 41)
	if err != nil || c.Size < 41 {
		t.Fatalf("AwaitCheckpoint(41) = %d, %v", c.Size, err)
	}
	checkNote(t, s, c)
	big := make([]byte, tlog.MaxEntrySize+1)
	if _, err := l.AppendBatch(ctx, [][]byte{[]byte("small"), big}); !isTooLarge(err) {
		t.Fatalf("AppendBatch with an entry over MaxEntrySize: %v", err)
	}
	if n, err := l.Size(ctx); err != nil || n != 41 {
		t.Fatalf("Size after a refused batch = %d, %v; want 41", n, err)
	}
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func closeLog(t *testing.T, l tlog.Log) {
	t.Helper()
	if err := l.Close(ctxT(t)); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

func wantRange(t *testing.T, what string, err error) {
	t.Helper()
	if re, ok := errors.AsType[*tlog.RangeError](err); !ok {
		t.Fatalf("%s: err %v, want *tlog.RangeError", what, err)
	} else if re.Error() == "" {
		t.Fatalf("%s: empty error text", what)
	}
}

func testEmpty(t *testing.T, s Suite) {
	ctx := ctxT(t)
	l := s.Open(t, t.TempDir(), s.Signer, s.Verifier)
	defer closeLog(t, l)
	if n, err := l.Size(ctx); err != nil || n != 0 {
		t.Fatalf("Size = %d, %v; want 0", n, err)
	}
	_, err := l.InclusionProof(ctx, 0, 1)
	wantRange(t, "InclusionProof(0, 1)", err)
	_, err = l.Entry(ctx, 0)
	wantRange(t, "Entry(0)", err)
	_, err = l.AwaitCheckpoint(ctx, 1)
	wantRange(t, "AwaitCheckpoint(1)", err)
	c, err := l.AwaitCheckpoint(ctx, 0)
	if err != nil {
		t.Fatalf("AwaitCheckpoint(0): %v", err)
	}
	if c.Size != 0 || c.Root != merkle.RangeRoot(nil) {
		t.Fatalf("empty checkpoint %d %x, want 0 and the empty root", c.Size, c.Root)
	}
	checkNote(t, s, c)
}

// appendAll appends n distinct entries from workers goroutines and
// returns them by index.
func appendAll(t *testing.T, l tlog.Log, tag string, n, workers int) map[uint64][]byte {
	t.Helper()
	ctx := ctxT(t)
	got := make(map[uint64][]byte, n)
	var mu sync.Mutex
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Go(func() {
			for i := w; i < n; i += workers {
				e := fmt.Appendf(nil, "%s entry %d", tag, i)
				idx, err := l.Append(ctx, e)
				if err != nil {
					errs <- fmt.Errorf("append %d: %w", i, err)
					return
				}
				mu.Lock()
				if old, dup := got[idx]; dup {
					mu.Unlock()
					errs <- fmt.Errorf("index %d given to %q and %q", idx, old, e)
					return
				}
				got[idx] = e
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	return got
}

func testAppendProveReopen(t *testing.T, s Suite) {
	ctx := ctxT(t)
	dir := t.TempDir()
	l := s.Open(t, dir, s.Signer, s.Verifier)
	// Appends in sequence get increasing indices.
	var last uint64
	for i := range 3 {
		idx, err := l.Append(ctx, fmt.Appendf(nil, "first %d", i))
		if err != nil {
			t.Fatal(err)
		}
		if i > 0 && idx <= last {
			t.Fatalf("append %d got index %d after %d", i, idx, last)
		}
		last = idx
	}
	c1, err := l.AwaitCheckpoint(ctx, last+1)
	if err != nil {
		t.Fatal(err)
	}
	// Crosses an entry bundle and a tile boundary (256).
	const n = 600
	more := appendAll(t, l, "a", n-3, 16)
	entries := make([][]byte, n)
	for i := range 3 {
		entries[i] = fmt.Appendf(nil, "first %d", i)
	}
	for idx, e := range more {
		if idx < 3 || idx >= n || entries[idx] != nil {
			t.Fatalf("index %d out of place", idx)
		}
		entries[idx] = e
	}
	c2, err := l.AwaitCheckpoint(ctx, n)
	if err != nil {
		t.Fatal(err)
	}
	checkAll(t, s, l, entries, []tlog.Checkpoint{c1, c2})

	// Reopened, the log has the same entries and root, and goes on.
	closeLog(t, l)
	l = s.Open(t, dir, s.Signer, s.Verifier)
	defer closeLog(t, l)
	if sz, err := l.Size(ctx); err != nil || sz != n {
		t.Fatalf("reopened Size = %d, %v; want %d", sz, err, n)
	}
	c3, err := l.Checkpoint(ctx)
	if err != nil || c3.Size < n {
		t.Fatalf("reopened Checkpoint = %d, %v; want >= %d", c3.Size, err, n)
	}
	e := []byte("after reopen")
	idx, err := l.Append(ctx, e)
	if err != nil || idx != n {
		t.Fatalf("Append after reopen = %d, %v; want %d", idx, err, n)
	}
	entries = append(entries, e)
	c4, err := l.AwaitCheckpoint(ctx, n+1)
	if err != nil {
		t.Fatal(err)
	}
	checkAll(t, s, l, entries, []tlog.Checkpoint{c1, c2, c4})
}

// checkAll checks entries, each checkpoint's note and root, inclusion
// proofs of a spread of indices in each and consistency between them.
func checkAll(t *testing.T, s Suite, l tlog.Log, entries [][]byte, cps []tlog.Checkpoint) {
	t.Helper()
	ctx := ctxT(t)
	leaves := make([][32]byte, len(entries))
	for i, e := range entries {
		got, err := l.Entry(ctx, uint64(i))
		if err != nil || string(got) != string(e) {
			t.Fatalf("Entry(%d) = %q, %v; want %q", i, got, err, e)
		}
		leaves[i] = merkle.LeafHash(e)
	}
	var got [][]byte
	if err := l.Entries(ctx, 0, uint64(len(entries)), func(i uint64, e []byte) error {
		if i != uint64(len(got)) {
			return fmt.Errorf("entry %d after %d", i, len(got))
		}
		got = append(got, append([]byte(nil), e...))
		return nil
	}); err != nil {
		t.Fatalf("Entries: %v", err)
	}
	for i := range entries {
		if string(got[i]) != string(entries[i]) {
			t.Fatalf("Entries gave %q at %d, want %q", got[i], i, entries[i])
		}
	}
	for _, r := range [][2]uint64{{255, 257}, {3, 3}, {uint64(len(entries)) - 1, uint64(len(entries))}} {
		n := 0
		if err := l.Entries(ctx, r[0], r[1], func(i uint64, e []byte) error {
			if i != r[0]+uint64(n) || string(e) != string(entries[i]) {
				return fmt.Errorf("entry %d is %q", i, e)
			}
			n++
			return nil
		}); err != nil || uint64(n) != r[1]-r[0] {
			t.Fatalf("Entries(%d, %d): %d entries, %v", r[0], r[1], n, err)
		}
	}
	stop := errors.New("stop")
	if err := l.Entries(ctx, 0, uint64(len(entries)), func(uint64, []byte) error { return stop }); !errors.Is(err, stop) {
		t.Fatalf("Entries did not return fn's error: %v", err)
	}
	for k, c := range cps {
		checkNote(t, s, c)
		if c.Size > uint64(len(entries)) {
			t.Fatalf("checkpoint %d of size %d beyond %d entries", k, c.Size, len(entries))
		}
		if want := merkle.RangeRoot(merkle.CompactRange(leaves[:c.Size])); c.Root != want {
			t.Fatalf("checkpoint %d root %x, want %x", c.Size, c.Root, want)
		}
		for _, i := range spread(c.Size) {
			p, err := l.InclusionProof(ctx, i, c.Size)
			if err != nil {
				t.Fatalf("InclusionProof(%d, %d): %v", i, c.Size, err)
			}
			if err := merkle.VerifyInclusion(p, i, c.Size, c.Root, leaves[i]); err != nil {
				t.Fatalf("inclusion of %d in %d: %v", i, c.Size, err)
			}
		}
		for _, old := range cps[:k] {
			p, err := l.ConsistencyProof(ctx, old.Size, c.Size)
			if err != nil {
				t.Fatalf("ConsistencyProof(%d, %d): %v", old.Size, c.Size, err)
			}
			if err := merkle.VerifyConsistency(p, old.Size, c.Size, old.Root, c.Root); err != nil {
				t.Fatalf("consistency %d to %d: %v", old.Size, c.Size, err)
			}
		}
	}
}

// spread returns some indices below size: the ends, tile edges, others.
func spread(size uint64) []uint64 {
	var out []uint64
	for _, i := range []uint64{0, 1, 2, 7, 255, 256, 257, 511, 512, size / 2, size - 2, size - 1} {
		if i < size {
			out = append(out, i)
		}
	}
	return out
}

func checkNote(t *testing.T, s Suite, c tlog.Checkpoint) {
	t.Helper()
	got, err := tlog.OpenCheckpoint(c.Note, s.Verifier)
	if err != nil {
		t.Fatalf("checkpoint note: %v", err)
	}
	if got.Size != c.Size || got.Root != c.Root || got.Origin != s.Signer.Name() {
		t.Fatalf("checkpoint note says %d %x %q; struct %d %x, origin %q", got.Size, got.Root, got.Origin, c.Size, c.Root, s.Signer.Name())
	}
}

func testBounds(t *testing.T, s Suite) {
	ctx := ctxT(t)
	l := s.Open(t, t.TempDir(), s.Signer, s.Verifier)
	big := make([]byte, tlog.MaxEntrySize+1)
	if _, err := l.Append(ctx, big); !isTooLarge(err) {
		t.Fatalf("Append of %d bytes: %v, want *tlog.EntryTooLargeError", len(big), err)
	}
	for i := range 5 {
		if _, err := l.Append(ctx, fmt.Appendf(nil, "b %d", i)); err != nil {
			t.Fatal(err)
		}
	}
	idx, err := l.Append(ctx, big[:tlog.MaxEntrySize])
	if err != nil {
		t.Fatalf("Append of MaxEntrySize bytes: %v", err)
	}
	if got, err := l.Entry(ctx, idx); err != nil || len(got) != tlog.MaxEntrySize {
		t.Fatalf("Entry(%d) = %d bytes, %v", idx, len(got), err)
	}
	n, err := l.Size(ctx)
	if err != nil || n != 6 {
		t.Fatalf("Size = %d, %v; want 6", n, err)
	}
	_, err = l.InclusionProof(ctx, n, n)
	wantRange(t, "InclusionProof(n, n)", err)
	_, err = l.InclusionProof(ctx, 0, n+1)
	wantRange(t, "InclusionProof(0, n+1)", err)
	_, err = l.ConsistencyProof(ctx, 3, 2)
	wantRange(t, "ConsistencyProof(3, 2)", err)
	_, err = l.ConsistencyProof(ctx, 1, n+1)
	wantRange(t, "ConsistencyProof(1, n+1)", err)
	_, err = l.Entry(ctx, n)
	wantRange(t, "Entry(n)", err)
	err = l.Entries(ctx, 0, n+1, func(uint64, []byte) error { return nil })
	wantRange(t, "Entries(0, n+1)", err)
	err = l.Entries(ctx, 2, 1, func(uint64, []byte) error { return nil })
	wantRange(t, "Entries(2, 1)", err)
	closeLog(t, l)
	if _, err := l.Append(ctx, []byte("after close")); err == nil {
		t.Fatal("Append after Close succeeded")
	}
}

func isTooLarge(err error) bool {
	_, ok := errors.AsType[*tlog.EntryTooLargeError](err)
	return ok
}
