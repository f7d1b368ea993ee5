package tlog_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/edgeseal/edgeseal/archive/tlog"
	"github.com/edgeseal/edgeseal/archive/tlog/tlogtest"
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
