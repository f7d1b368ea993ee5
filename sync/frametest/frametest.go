// Package frametest is the conformance suite of sync.FrameStore: the
// in-memory Assembler and the archive's database store run Run against
// their own opener.
package frametest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	gosync "sync"
	"testing"
	"time"

	"github.com/edgeseal/edgeseal/bundle/wire"
	"github.com/edgeseal/edgeseal/sync"
)

// Opener returns n FrameStores sharing one place (n replicas of an
// archive; an in-memory store returns the same one n times), fresh for
// each call, with limits and a clock now.
type Opener func(t *testing.T, n int, limits sync.AssemblerLimits, now func() time.Time) []sync.FrameStore

// Run runs the conformance suite.
func Run(t *testing.T, open Opener) {
	t.Run("Order", func(t *testing.T) { order(t, open) })
	t.Run("Repeats", func(t *testing.T) { repeats(t, open) })
	t.Run("Replicas", func(t *testing.T) { replicas(t, open) })
	t.Run("Race", func(t *testing.T) { race(t, open) })
	t.Run("Refused", func(t *testing.T) { refused(t, open) })
	t.Run("SourcePartials", func(t *testing.T) { sourcePartials(t, open) })
	t.Run("TTL", func(t *testing.T) { ttl(t, open) })
	t.Run("Single", func(t *testing.T) { single(t, open) })
}

// clock is a settable clock.
type clock struct {
	mu  gosync.Mutex
	now time.Time
}

func newClock() *clock { return &clock{now: time.Unix(1_800_000_000, 0)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// bundle is a test bundle cut into frames of at most 1 KiB.
type bundle struct {
	id     string
	data   []byte
	digest [32]byte
	frames [][]byte
}

func newBundle(seed string, n int) *bundle {
	out := make([]byte, 0, n+32)
	h := sha256.Sum256([]byte(seed))
	for len(out) < n {
		out = append(out, h[:]...)
		h = sha256.Sum256(h[:])
	}
	b := &bundle{id: "id-" + seed, data: out[:n], digest: sha256.Sum256(out[:n])}
	b.frames = sync.EncodeChunks(b.id, b.digest, b.data, 1024)
	return b
}

func (b *bundle) check(t *testing.T, c *sync.Complete, source string) {
	t.Helper()
	if c == nil {
		t.Fatalf("bundle %s: not completed", b.id)
	}
	if !bytes.Equal(c.Bundle, b.data) || c.Digest != b.digest || c.ID != b.id || c.Source != source {
		t.Fatalf("bundle %s: completed with other bytes, digest, id or source (%q)", b.id, c.Source)
	}
	if !c.Hashed.Valid() || c.Hashed.Sum() != b.digest || !bytes.Equal(c.Hashed.Bytes(), b.data) {
		t.Fatalf("bundle %s: Hashed is not the bundle with its digest", b.id)
	}
}

func add(t *testing.T, s sync.FrameStore, source string, frame []byte) *sync.Complete {
	t.Helper()
	f := bytes.Clone(frame)
	c, err := s.Add(context.Background(), source, f)
	clear(f) // the store does not keep the frame
	if err != nil {
		t.Fatalf("Add: %v", err)
	}
	return c
}

// order: the frames of a bundle join in any order; only the last one
// completes it.
func order(t *testing.T, open Opener) {
	b := newBundle("order", 5000)
	if len(b.frames) < 5 {
		t.Fatalf("%d frames", len(b.frames))
	}
	n := len(b.frames)
	for _, ord := range [][]int{
		{n - 1, 0, 2, 1, 3, 4},
		{2, 1, 0, 3, 4, n - 1},
		{4, 3, 2, 1, 0, n - 1},
	} {
		s := open(t, 1, sync.AssemblerLimits{}, time.Now)[0]
		for k, i := range ord[:n] {
			c := add(t, s, "s/d", b.frames[i])
			if k < n-1 && c != nil {
				t.Fatalf("order %v: complete after %d of %d frames", ord, k+1, n)
			}
			if k == n-1 {
				b.check(t, c, "s/d")
			}
		}
	}
}

// repeats: every frame but the last sent twice gives one Complete, on
// the last frame; the bundle sent again after it completed is joined
// again.
func repeats(t *testing.T, open Opener) {
	b := newBundle("repeats", 4000)
	n := len(b.frames)
	s := open(t, 1, sync.AssemblerLimits{}, time.Now)[0]
	for i, f := range b.frames[:n-1] {
		for rep := 0; rep < 2; rep++ {
			if c := add(t, s, "s/d", f); c != nil {
				t.Fatalf("completed at frame %d repeat %d of %d frames", i, rep, n)
			}
		}
	}
	b.check(t, add(t, s, "s/d", b.frames[n-1]), "s/d")
	var c *sync.Complete
	for i := n - 1; i >= 0; i-- {
		if c != nil {
			t.Fatal("completed early when sent again")
		}
		c = add(t, s, "s/d", b.frames[i])
	}
	b.check(t, c, "s/d")
}

// replicas: two stores on one place receive the frames of two bundles of
// one source and one of another interleaved, as a shared subscription
// deals them; each bundle completes exactly once, on the store that got
// its last frame.
func replicas(t *testing.T, open Opener) {
	ss := open(t, 2, sync.AssemblerLimits{}, time.Now)
	bs := []*bundle{newBundle("r1", 6000), newBundle("r2", 3500), newBundle("r3", 4200)}
	srcs := []string{"s/a", "s/a", "s/b"}
	got := make([]int, len(bs))
	k := 0
	for i := 0; ; i++ {
		more := false
		for j, b := range bs {
			if i >= len(b.frames) {
				continue
			}
			more = true
			if c := add(t, ss[k%2], srcs[j], b.frames[i]); c != nil {
				b.check(t, c, srcs[j])
				got[j]++
			}
			k++
		}
		if !more {
			break
		}
	}
	for j, n := range got {
		if n != 1 {
			t.Fatalf("bundle %d completed %d times, want once", j, n)
		}
	}
}

// race: the frames of several bundles of one source, each sent once,
// added concurrently by several goroutines through two stores, the last
// frames of a bundle racing: each bundle completes exactly once.
func race(t *testing.T, open Opener) {
	ss := open(t, 2, sync.AssemblerLimits{}, time.Now)
	const bundles, workers = 4, 3
	var mu gosync.Mutex
	got := map[[32]byte]int{}
	var wg gosync.WaitGroup
	errs := make(chan error, bundles*workers)
	for j := 0; j < bundles; j++ {
		b := newBundle(fmt.Sprint("race", j), 5000+j*700)
		for w := 0; w < workers; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := w; i < len(b.frames); i += workers {
					c, err := ss[(i+j)%2].Add(context.Background(), "s/d", bytes.Clone(b.frames[i]))
					if err != nil {
						errs <- err
						return
					}
					if c != nil {
						if !bytes.Equal(c.Bundle, b.data) || c.Digest != b.digest {
							errs <- fmt.Errorf("bundle %s completed with other bytes", b.id)
							return
						}
						mu.Lock()
						got[c.Digest]++
						mu.Unlock()
					}
				}
			}()
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if len(got) != bundles {
		t.Fatalf("%d of %d bundles completed", len(got), bundles)
	}
	for d, n := range got {
		if n != 1 {
			t.Fatalf("bundle %s completed %d times, want once", wire.FormatHash(d), n)
		}
	}
}

// refused: malformed frames, frames disagreeing with their bundle, a
// bundle past MaxBundle and one that does not hash to its digest.
func refused(t *testing.T, open Opener) {
	s := open(t, 1, sync.AssemblerLimits{MaxBundle: 8000}, time.Now)[0]
	ctx := context.Background()
	var fe *sync.FrameError
	if _, err := s.Add(ctx, "s/d", []byte("not a frame")); !errors.As(err, &fe) {
		t.Fatalf("garbage: %v, want *FrameError", err)
	}
	big := newBundle("big", 9000)
	var le *sync.LimitError
	if _, err := s.Add(ctx, "s/d", big.frames[0]); !errors.As(err, &le) {
		t.Fatalf("bundle past MaxBundle: %v, want *LimitError", err)
	}
	b := newBundle("mismatch", 5000)
	add(t, s, "s/d", b.frames[0])
	other := sync.EncodeChunks(b.id, b.digest, b.data[:4000], 1024) // same digest, other size
	var me *sync.MismatchError
	if _, err := s.Add(ctx, "s/d", other[1]); !errors.As(err, &me) {
		t.Fatalf("frame of another size: %v, want *MismatchError", err)
	}
	shorter := b.frames[1][:len(b.frames[1])-10] // same header, a shorter chunk
	if _, err := s.Add(ctx, "s/d", shorter); !errors.As(err, &me) {
		t.Fatalf("chunk of another length: %v, want *MismatchError", err)
	}
	otherID := sync.EncodeChunks("other-id", b.digest, b.data, 1024)
	if _, err := s.Add(ctx, "s/d", otherID[1]); !errors.As(err, &me) {
		t.Fatalf("frame of another id: %v, want *MismatchError", err)
	}
	// The refusals did not spoil the partial: the right frames complete it.
	var c *sync.Complete
	for _, f := range b.frames[1:] {
		c = add(t, s, "s/d", f)
	}
	b.check(t, c, "s/d")

	lie := newBundle("lie", 3000)
	wrong := sync.EncodeChunks(lie.id, sha256.Sum256([]byte("another")), lie.data, 1024)
	var de *sync.DigestError
	var err error
	for i, f := range wrong {
		c, err = s.Add(ctx, "s/d", f)
		if c != nil {
			t.Fatal("a bundle that does not hash to its digest completed")
		}
		if i < len(wrong)-1 && err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
	}
	if !errors.As(err, &de) {
		t.Fatalf("bundle with a wrong digest: %v, want *DigestError", err)
	}
}

// sourcePartials: past MaxSourcePartials a source's least recently
// touched partial is dropped; another source's partial is not.
func sourcePartials(t *testing.T, open Opener) {
	clk := newClock()
	s := open(t, 1, sync.AssemblerLimits{MaxSourcePartials: 2}, clk.Now)[0]
	other := newBundle("other", 3000)
	add(t, s, "s/other", other.frames[0])
	bs := []*bundle{newBundle("p1", 3000), newBundle("p2", 3000), newBundle("p3", 3000)}
	for _, b := range bs {
		clk.Advance(time.Second)
		add(t, s, "s/d", b.frames[0])
	}
	// p1 was dropped for p3: its other frames do not complete it.
	for _, f := range bs[0].frames[1:] {
		if c := add(t, s, "s/d", f); c != nil {
			t.Fatal("an evicted partial completed without its first frame")
		}
	}
	// p1's partial, made again, evicted p2; p3 completes.
	var c *sync.Complete
	for _, f := range bs[2].frames[1:] {
		c = add(t, s, "s/d", f)
	}
	bs[2].check(t, c, "s/d")
	for _, f := range other.frames[1:] {
		c = add(t, s, "s/other", f)
	}
	other.check(t, c, "s/other")
}

// ttl: a partial that got no frame for the TTL is dropped.
func ttl(t *testing.T, open Opener) {
	clk := newClock()
	s := open(t, 1, sync.AssemblerLimits{TTL: time.Minute}, clk.Now)[0]
	b := newBundle("ttl", 3000)
	n := len(b.frames)
	add(t, s, "s/d", b.frames[0])
	clk.Advance(50 * time.Second)
	add(t, s, "s/d", b.frames[1]) // touched: kept
	clk.Advance(50 * time.Second)
	for _, f := range b.frames[2 : n-1] {
		add(t, s, "s/d", f)
	}
	clk.Advance(61 * time.Second)
	if c := add(t, s, "s/d", b.frames[n-1]); c != nil {
		t.Fatal("a partial idle past the TTL completed")
	}
	var c *sync.Complete
	for _, f := range b.frames[:n-1] {
		c = add(t, s, "s/d", f)
	}
	b.check(t, c, "s/d")
}

// single: a bundle of one frame completes at once, every time it comes.
func single(t *testing.T, open Opener) {
	ss := open(t, 2, sync.AssemblerLimits{}, time.Now)
	b := newBundle("single", 500)
	if len(b.frames) != 1 {
		t.Fatalf("%d frames", len(b.frames))
	}
	b.check(t, add(t, ss[0], "s/d", b.frames[0]), "s/d")
	b.check(t, add(t, ss[1], "s/d", b.frames[0]), "s/d")
}
