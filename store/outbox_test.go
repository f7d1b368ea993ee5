package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// Outbox entries are files: sealed on disk, kept across a reopen, their
// space returned on delete; temp files of a crash are removed at Open;
// ids that are not plain file names are refused.
func TestOutboxFiles(t *testing.T) {
	ctx := context.Background()
	key := bytes.Repeat([]byte{3}, 32)
	dir := t.TempDir()
	j := openT(t, dir, func(o *Options) { o.EncryptionKey = key })
	bundle := bytes.Repeat([]byte("bundle-bytes "), 1000)
	if err := j.PutOutbox(ctx, "00000000000000000010", bundle); err != nil {
		t.Fatal(err)
	}
	if err := j.PutOutbox(ctx, "00000000000000000020", []byte("second")); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "outbox", "00000000000000000010")
	onDisk, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(onDisk, []byte("bundle-bytes")) {
		t.Fatal("outbox file holds the bundle in the clear")
	}
	for _, id := range []string{"", ".hidden", "../escape", "a/b", string(make([]byte, 129))} {
		if err := j.PutOutbox(ctx, id, []byte("x")); err == nil {
			t.Errorf("id %q accepted", id)
		}
	}
	var ce *ConflictError
	if err := j.PutOutbox(ctx, "00000000000000000010", []byte("other")); !errors.As(err, &ce) {
		t.Fatalf("other bytes under an id: %v, want *ConflictError", err)
	}
	if err := j.PutOutbox(ctx, "00000000000000000010", bundle); err != nil {
		t.Fatalf("same bytes again: %v", err)
	}
	n, size, err := j.OutboxSize(ctx)
	if err != nil || n != 2 || size != int64(len(bundle)+len("second")) {
		t.Fatalf("OutboxSize = %d, %d, %v; want 2, %d", n, size, err, len(bundle)+len("second"))
	}
	j.Close()

	// A crash left a temp file; the moved file under another id does not
	// open (its name is bound into the seal).
	if err := os.WriteFile(filepath.Join(dir, "outbox", ".put-123"), []byte("partial"), 0o600); err != nil {
		t.Fatal(err)
	}
	j = openT(t, dir, func(o *Options) { o.EncryptionKey = key })
	defer j.Close()
	if _, err := os.Stat(filepath.Join(dir, "outbox", ".put-123")); !os.IsNotExist(err) {
		t.Fatalf("temp file after Open: %v", err)
	}
	var ids []string
	if err := j.Outbox(ctx, func(id string, data []byte) error {
		ids = append(ids, id)
		if id == "00000000000000000010" && !bytes.Equal(data, bundle) {
			t.Error("bundle changed across reopen")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(ids) != 2 || ids[0] != "00000000000000000010" {
		t.Fatalf("outbox ids %v", ids)
	}
	if err := os.Link(path, filepath.Join(dir, "outbox", "00000000000000000030")); err != nil {
		t.Fatal(err)
	}
	var corrupt *CorruptError
	if _, _, err := j.OutboxGet(ctx, "00000000000000000030"); !errors.As(err, &corrupt) {
		t.Fatalf("bundle moved to another id: %v, want *CorruptError", err)
	}
	for _, id := range []string{"00000000000000000010", "00000000000000000030", "00000000000000000010"} {
		if err := j.DeleteOutbox(ctx, id); err != nil {
			t.Fatalf("delete %s: %v", id, err)
		}
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("deleted entry still on disk: %v", err)
	}
	if _, ok, err := j.OutboxGet(ctx, "00000000000000000010"); ok || err != nil {
		t.Fatalf("deleted entry: ok %v, %v", ok, err)
	}
}

// DeleteOutboxes deletes several entries at once; absent ids are no-ops,
// and an id that is not a plain file name refuses the whole call before
// anything is deleted.
func TestDeleteOutboxes(t *testing.T) {
	ctx := context.Background()
	j := openT(t, t.TempDir())
	defer j.Close()
	ids := []string{"00000000000000000001", "00000000000000000002", "00000000000000000003"}
	for _, id := range ids {
		if err := j.PutOutbox(ctx, id, []byte("bundle "+id)); err != nil {
			t.Fatal(err)
		}
	}
	if err := j.DeleteOutboxes(ctx, []string{ids[0], "../escape"}); err == nil {
		t.Fatal("a bad id was accepted")
	}
	if n, _, _ := j.OutboxSize(ctx); n != 3 {
		t.Fatalf("a refused call deleted entries: %d left", n)
	}
	if err := j.DeleteOutboxes(ctx, []string{ids[0], "00000000000000000009", ids[2]}); err != nil {
		t.Fatal(err)
	}
	var left []string
	if err := j.OutboxIDs(ctx, func(id string) error { left = append(left, id); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(left) != 1 || left[0] != ids[1] {
		t.Fatalf("left %q, want only %s", left, ids[1])
	}
	if err := j.DeleteOutboxes(ctx, nil); err != nil {
		t.Fatalf("no ids: %v", err)
	}
}

// TestOutboxWriteFailureFailsJournal: an outbox entry that cannot be
// written (here its folder is gone, replaced by a file) fails the journal
// like a failed commit: ErrFailed, Failed closed, appends refused.
func TestOutboxWriteFailureFailsJournal(t *testing.T) {
	ctx := context.Background()
	j := openT(t, t.TempDir())
	defer j.Close()
	if err := os.RemoveAll(j.outboxDir()); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(j.outboxDir(), []byte("not a folder"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := j.PutOutbox(ctx, "b1", []byte("bundle")); !errors.Is(err, ErrFailed) {
		t.Fatalf("put outbox into a file: %v, want ErrFailed", err)
	}
	select {
	case <-j.Failed():
	default:
		t.Fatal("Failed not closed after a failed outbox write")
	}
	if _, err := j.Append(ctx, Entry{Build: build("after")}); !errors.Is(err, ErrFailed) {
		t.Fatalf("append after a failed outbox write: %v", err)
	}
}

// TestOutboxGetIntoReuses: entries read into one buffer share its memory
// while they fit, a slightly larger bundle included (the buffer grows with
// room to spare), and each read gives that entry's bytes.
func TestOutboxGetIntoReuses(t *testing.T) {
	ctx := context.Background()
	j := openT(t, t.TempDir(), func(o *Options) { o.EncryptionKey = bytes.Repeat([]byte{5}, 32) })
	defer j.Close()
	sizes := []int{100_000, 110_000, 90_000}
	for i, n := range sizes {
		if err := j.PutOutbox(ctx, fmt.Sprintf("%020d", i), bytes.Repeat([]byte{byte('a' + i)}, n)); err != nil {
			t.Fatal(err)
		}
	}
	var buf []byte
	var first *byte
	for i, n := range sizes {
		data, ok, err := j.OutboxGetInto(ctx, fmt.Sprintf("%020d", i), &buf)
		if err != nil || !ok {
			t.Fatalf("entry %d: ok %v, %v", i, ok, err)
		}
		if !bytes.Equal(data, bytes.Repeat([]byte{byte('a' + i)}, n)) {
			t.Fatalf("entry %d: %d bytes, not its own", i, len(data))
		}
		if i == 0 {
			first = &buf[:1][0]
		} else if &buf[:1][0] != first {
			t.Errorf("entry %d (%d bytes) read into a new buffer after one of %d", i, n, sizes[0])
		}
	}
}
