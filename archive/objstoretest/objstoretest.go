// Package objstoretest is the conformance test every archive.ObjectStore
// implementation runs (the contract is documented on archive.ObjectStore).
package objstoretest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/edgeseal/edgeseal/archive"
	"github.com/edgeseal/edgeseal/bundle/wire"
)

// Harness opens a fresh, empty store for a test, and can alter a stored
// object behind the store's back (to simulate a bit flip at rest or a
// tamperer with disk access). Alter may be nil when the backend cannot be
// altered (the at-rest cases are then skipped).
//
// Lister and HashedPutter say which optional interfaces the store
// implements (archive.ObjectLister, archive.HashedPutter): their cases run
// only when claimed, and a store whose method set differs from the claims
// (either way) fails the roundtrip case, so a changed method set never
// turns its cases into skips or silently drops them.
type Harness struct {
	New          func(t *testing.T) archive.ObjectStore
	Alter        func(t *testing.T, s archive.ObjectStore, digest [32]byte, data []byte)
	Lister       bool
	HashedPutter bool
}

// claims fails t unless s implements each optional interface exactly
// when the harness claims it.
func claims(t *testing.T, s archive.ObjectStore, h Harness) {
	t.Helper()
	_, lister := s.(archive.ObjectLister)
	_, hashed := s.(archive.HashedPutter)
	for _, c := range []struct {
		iface       string
		is, claimed bool
	}{{"ObjectLister", lister, h.Lister}, {"HashedPutter", hashed, h.HashedPutter}} {
		if c.is != c.claimed {
			t.Errorf("%T: is an archive.%s %v, the harness claims %v", s, c.iface, c.is, c.claimed)
		}
	}
}

// Run runs the conformance suite.
func Run(t *testing.T, h Harness) {
	ctx := context.Background()
	obj := func(i int) ([32]byte, []byte) {
		b := bytes.Repeat(fmt.Appendf(nil, "object %d;", i), 100+i)
		return sha256.Sum256(b), b
	}
	t.Run("roundtrip", func(t *testing.T) {
		s := h.New(t)
		claims(t, s, h)
		d, b := obj(1)
		if ok, err := s.Has(ctx, d); err != nil || ok {
			t.Fatalf("Has before Put = %v, %v", ok, err)
		}
		if err := s.Put(ctx, d, b); err != nil {
			t.Fatal(err)
		}
		got, err := s.Get(ctx, d)
		if err != nil || !bytes.Equal(got, b) {
			t.Fatalf("Get = %d bytes, %v", len(got), err)
		}
		if ok, err := s.Has(ctx, d); err != nil || !ok {
			t.Fatalf("Has after Put = %v, %v", ok, err)
		}
		empty := sha256.Sum256(nil)
		if err := s.Put(ctx, empty, nil); err != nil {
			t.Fatalf("empty object: %v", err)
		}
		if got, err := s.Get(ctx, empty); err != nil || len(got) != 0 {
			t.Fatalf("empty object Get = %q, %v", got, err)
		}
	})
	t.Run("repeat is a no-op", func(t *testing.T) {
		s := h.New(t)
		d, b := obj(2)
		for range 3 {
			if err := s.Put(ctx, d, bytes.Clone(b)); err != nil {
				t.Fatal(err)
			}
		}
		if got, err := s.Get(ctx, d); err != nil || !bytes.Equal(got, b) {
			t.Fatalf("Get = %v", err)
		}
	})
	list := func(t *testing.T) {
		s := h.New(t)
		l, ok := s.(archive.ObjectLister)
		if !ok {
			t.Fatalf("%T is not an archive.ObjectLister", s)
		}
		want := map[[32]byte]bool{}
		for i := 10; i < 13; i++ {
			d, b := obj(i)
			if err := s.Put(ctx, d, b); err != nil {
				t.Fatal(err)
			}
			want[d] = true
		}
		got := map[[32]byte]bool{}
		if err := l.List(ctx, func(d [32]byte) error {
			if got[d] {
				return fmt.Errorf("sha256:%x listed twice", d)
			}
			got[d] = true
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if len(got) != len(want) {
			t.Fatalf("listed %d objects, want %d", len(got), len(want))
		}
		for d := range want {
			if !got[d] {
				t.Fatalf("sha256:%x not listed", d)
			}
		}
		stop := errors.New("stop")
		n := 0
		if err := l.List(ctx, func([32]byte) error { n++; return stop }); !errors.Is(err, stop) || n != 1 {
			t.Fatalf("List after fn's error: %v after %d calls", err, n)
		}
	}
	if h.Lister {
		t.Run("list", list)
	}
	t.Run("not found", func(t *testing.T) {
		s := h.New(t)
		d, _ := obj(3)
		if _, err := s.Get(ctx, d); !errors.Is(err, archive.ErrNotFound) {
			t.Fatalf("Get of absent object: %v, want ErrNotFound", err)
		}
	})
	t.Run("wrong digest", func(t *testing.T) {
		s := h.New(t)
		d, _ := obj(4)
		_, other := obj(5)
		var de *archive.DigestError
		if err := s.Put(ctx, d, other); !errors.As(err, &de) || de.Want != d {
			t.Fatalf("Put under a wrong digest: %v, want *DigestError", err)
		}
		if ok, _ := s.Has(ctx, d); ok {
			t.Fatal("object stored under a wrong digest")
		}
	})
	t.Run("concurrent puts", func(t *testing.T) {
		s := h.New(t)
		d, b := obj(6)
		var wg sync.WaitGroup
		errs := make(chan error, 8)
		for range 8 {
			wg.Go(func() { errs <- s.Put(ctx, d, b) })
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		if got, err := s.Get(ctx, d); err != nil || !bytes.Equal(got, b) {
			t.Fatalf("Get = %v", err)
		}
	})
	t.Run("cancelled", func(t *testing.T) {
		s := h.New(t)
		d, b := obj(7)
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		if err := s.Put(cctx, d, b); !errors.Is(err, context.Canceled) {
			t.Fatalf("Put with a cancelled context: %v", err)
		}
	})
	putHashed := func(t *testing.T) {
		s := h.New(t)
		hp, ok := s.(archive.HashedPutter)
		if !ok {
			t.Fatalf("%T is not an archive.HashedPutter", s)
		}
		d, b := obj(9)
		hb := wire.HashBytes(b)
		for range 2 { // the second is a no-op
			if err := hp.PutHashed(ctx, hb); err != nil {
				t.Fatal(err)
			}
		}
		if got, err := s.Get(ctx, d); err != nil || !bytes.Equal(got, b) {
			t.Fatalf("Get after PutHashed = %v", err)
		}
		if err := hp.PutHashed(ctx, wire.Hashed{}); err == nil {
			t.Fatal("PutHashed of a zero Hashed succeeded")
		}
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		if err := hp.PutHashed(cctx, wire.HashBytes([]byte("x"))); !errors.Is(err, context.Canceled) {
			t.Fatalf("PutHashed with a cancelled context: %v", err)
		}
	}
	if h.HashedPutter {
		t.Run("put hashed", putHashed)
	}
	t.Run("altered at rest", func(t *testing.T) {
		if h.Alter == nil {
			t.Skip("backend cannot be altered behind its back")
		}
		s := h.New(t)
		d, b := obj(8)
		if err := s.Put(ctx, d, b); err != nil {
			t.Fatal(err)
		}
		flipped := bytes.Clone(b)
		flipped[len(flipped)/2] ^= 0x04
		h.Alter(t, s, d, flipped)
		var ce *archive.CorruptError
		if _, err := s.Get(ctx, d); !errors.As(err, &ce) || ce.Digest != d {
			t.Fatalf("Get after a bit flip: %v, want *CorruptError", err)
		}
		var conflict *archive.ConflictError
		if err := s.Put(ctx, d, b); !errors.As(err, &conflict) || conflict.Digest != d {
			t.Fatalf("Put over altered bytes: %v, want *ConflictError", err)
		}
	})
}
