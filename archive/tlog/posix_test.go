package tlog_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/edgeseal/edgeseal/archive/tlog"
	"github.com/edgeseal/edgeseal/archive/tlog/tlogtest"
	"github.com/edgeseal/edgeseal/bundle/merkle"
)

// TestOpenPOSIXRefuses checks the options and that a log whose published
// checkpoint another key signed is refused rather than served.
func TestOpenPOSIXRefuses(t *testing.T) {
	ctx := t.Context()
	s, v := tlogtest.Keys(t, "edgeseal-archive")
	s2, v2 := tlogtest.Keys(t, "edgeseal-archive")
	dir := t.TempDir()
	for _, o := range []tlog.POSIXOptions{
		{Signer: s, Verifier: v},
		{Dir: dir, Verifier: v},
		{Dir: dir, Signer: s},
		{Dir: dir, Signer: s, Verifier: v2},
		{Dir: dir, Signer: s, Verifier: v, CheckpointInterval: 10 * time.Millisecond},
	} {
		if l, err := tlog.OpenPOSIX(ctx, o); err == nil {
			_ = l.Close(ctx)
			t.Errorf("OpenPOSIX(%+v) succeeded", o)
		}
	}
	l := openPOSIX(t, dir, s, v)
	if _, err := l.Append(ctx, []byte("one")); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if l, err := tlog.OpenPOSIX(ctx, tlog.POSIXOptions{Dir: dir, Signer: s2, Verifier: v2}); err == nil {
		_ = l.Close(ctx)
		t.Fatal("a log signed by another key was opened")
	}
}

// TestAwaitCheckpointEnds checks AwaitCheckpoint ends with its context
// and with Close, and Append after Close is ErrClosed.
func TestAwaitCheckpointEnds(t *testing.T) {
	s, v := tlogtest.Keys(t, "edgeseal-archive")
	// A long interval: the checkpoint after the first append is late.
	l, err := tlog.OpenPOSIX(t.Context(), tlog.POSIXOptions{Dir: t.TempDir(), Signer: s, Verifier: v, CheckpointInterval: 5 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Append(t.Context(), []byte("x")); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	if _, err := l.AwaitCheckpoint(ctx, 1); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("AwaitCheckpoint past its deadline: %v", err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := l.AwaitCheckpoint(t.Context(), 1)
		done <- err
	}()
	cctx, ccancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer ccancel()
	_ = l.Close(cctx) // its shutdown waits for the late checkpoint: cut short
	if err := <-done; !errors.Is(err, tlog.ErrClosed) {
		t.Fatalf("AwaitCheckpoint across Close: %v", err)
	}
	if _, err := l.Append(t.Context(), []byte("y")); !errors.Is(err, tlog.ErrClosed) {
		t.Fatalf("Append after Close: %v", err)
	}
}

// TestKeyRotation reopens a log with a new key, naming the old one as
// previous: the checkpoint the old key published opens, the next is
// signed by the new key, and the tree goes on (consistent).
func TestKeyRotation(t *testing.T) {
	ctx := t.Context()
	s1, v1 := tlogtest.Keys(t, "edgeseal-archive")
	s2, v2 := tlogtest.Keys(t, "edgeseal-archive")
	dir := t.TempDir()
	l := openPOSIX(t, dir, s1, v1)
	if _, err := l.Append(ctx, []byte("before")); err != nil {
		t.Fatal(err)
	}
	old, err := l.AwaitCheckpoint(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := tlog.OpenPOSIX(ctx, tlog.POSIXOptions{Dir: dir, Signer: s2, Verifier: v2, Previous: []note.Verifier{v2}}); err == nil {
		t.Fatal("opened without the old key")
	}
	_, vOther := tlogtest.Keys(t, "other-origin")
	if _, err := tlog.OpenPOSIX(ctx, tlog.POSIXOptions{Dir: dir, Signer: s2, Verifier: v2, Previous: []note.Verifier{vOther}}); err == nil {
		t.Fatal("opened with a previous key of another name")
	}
	l2, err := tlog.OpenPOSIX(ctx, tlog.POSIXOptions{Dir: dir, Signer: s2, Verifier: v2, Previous: []note.Verifier{v1}, CheckpointInterval: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer l2.Close(ctx)
	if _, err := l2.Append(ctx, []byte("after")); err != nil {
		t.Fatal(err)
	}
	c, err := l2.AwaitCheckpoint(ctx, 2)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tlog.OpenCheckpoint(c.Note, v2); err != nil {
		t.Fatalf("new checkpoint under the new key: %v", err)
	}
	if _, err := tlog.OpenCheckpoint(c.Note, v1); err == nil {
		t.Fatal("new checkpoint opens under the old key")
	}
	p, err := l2.ConsistencyProof(ctx, old.Size, c.Size)
	if err != nil {
		t.Fatal(err)
	}
	if err := merkle.VerifyConsistency(p, old.Size, c.Size, old.Root, c.Root); err != nil {
		t.Fatal(err)
	}
}
