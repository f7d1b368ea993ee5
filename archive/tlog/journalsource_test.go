package tlog_test

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/edgeseal/edgeseal/archive/tlog"
	"github.com/edgeseal/edgeseal/archive/tlog/tlogtest"
	"github.com/edgeseal/edgeseal/store"
)

// TestJournalSource: a journal whose owner signs the checkpoints is
// served as the same checkpoint, tiles and bundles as the Journal log of
// it; no checkpoint before one is stored; a stored checkpoint of another
// origin or not a note is refused.
func TestJournalSource(t *testing.T) {
	ctx := t.Context()
	s, v := tlogtest.Keys(t, "edgeseal-archive")
	j, err := store.Open(ctx, store.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	l, err := tlog.NewJournal(j, s, v)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close(context.Background()) })
	src := tlog.NewJournalSource(j, "edgeseal-archive")
	if _, err := src.Checkpoint(ctx); !errors.Is(err, tlog.ErrNoCheckpoint) {
		t.Fatalf("Checkpoint of a log without one: %v", err)
	}
	appendConcurrently(t, l, nil, 300)
	want, err := l.AwaitCheckpoint(ctx, 300)
	if err != nil {
		t.Fatal(err)
	}
	got, err := src.Checkpoint(ctx)
	if err != nil || got.Size != want.Size || got.Root != want.Root || !bytes.Equal(got.Note, want.Note) {
		t.Fatalf("Checkpoint = %+v, %v; want %+v", got, err, want)
	}
	for _, r := range []struct {
		level, index uint64
		w            uint8
	}{{0, 0, 0}, {0, 1, 44}, {1, 0, 1}} {
		a, err1 := l.ReadTile(ctx, r.level, r.index, r.w)
		b, err2 := src.ReadTile(ctx, r.level, r.index, r.w)
		if err1 != nil || err2 != nil || !bytes.Equal(a, b) {
			t.Fatalf("tile %+v: %v, %v", r, err1, err2)
		}
	}
	for _, r := range []struct {
		index uint64
		w     uint8
	}{{0, 0}, {1, 44}} {
		a, err1 := l.ReadEntryBundle(ctx, r.index, r.w)
		b, err2 := src.ReadEntryBundle(ctx, r.index, r.w)
		if err1 != nil || err2 != nil || !bytes.Equal(a, b) {
			t.Fatalf("entry bundle %+v: %v, %v", r, err1, err2)
		}
	}
	if _, err := src.ReadEntryBundle(ctx, 1, 45); err == nil {
		t.Fatal("an entry bundle beyond the log was read")
	}
	if _, err := tlog.NewJournalSource(j, "other").Checkpoint(ctx); err == nil {
		t.Fatal("a checkpoint of another origin was served")
	}
	if _, err := l.Append(ctx, []byte("one more")); err != nil {
		t.Fatal(err)
	}
	if err := j.PutCheckpoint(ctx, 301, []byte("edgeseal-archive\n301\nnot a note")); err != nil {
		t.Fatal(err)
	}
	if _, err := src.Checkpoint(ctx); err == nil {
		t.Fatal("a stored checkpoint that is not a signed note was served")
	}
}
