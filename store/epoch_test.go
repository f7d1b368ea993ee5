package store

import (
	"context"
	"errors"
	"fmt"
	"testing"
)

// TestStartEpoch: a new epoch forgets every checkpoint (the next seal
// starts from size 0), keeps records and idempotency keys, survives a
// reopen, and is a no-op when nothing was sealed since.
func TestStartEpoch(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	key := make([]byte, 32)
	j := openT(t, dir, func(o *Options) { o.EncryptionKey = key })
	for i := range 5 {
		if _, err := j.Append(ctx, Entry{Build: build(fmt.Sprint("r", i)), Key: []byte(fmt.Sprint("k", i))}); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range []uint64{2, 5} {
		if err := j.PutCheckpoint(ctx, n, []byte(fmt.Sprint("cp", n))); err != nil {
			t.Fatal(err)
		}
	}
	if e, err := j.Epoch(); err != nil || e != 1 {
		t.Fatalf("first epoch %d, %v; want 1", e, err)
	}
	if n, _, err := j.LastCheckpoint(); err != nil || n != 5 { // cached
		t.Fatalf("last checkpoint %d, %v", n, err)
	}
	e, err := j.StartEpoch(ctx)
	if err != nil || e != 2 {
		t.Fatalf("StartEpoch: %d, %v; want 2", e, err)
	}
	if _, _, err := j.LastCheckpoint(); !errors.Is(err, ErrNotFound) {
		t.Fatalf("last checkpoint after a new epoch: %v, want ErrNotFound", err)
	}
	if _, _, err := j.NextCheckpoint(0); !errors.Is(err, ErrNotFound) {
		t.Fatalf("next checkpoint after a new epoch: %v, want ErrNotFound", err)
	}
	// Nothing sealed in epoch 2: starting again changes nothing.
	if e, err := j.StartEpoch(ctx); err != nil || e != 2 {
		t.Fatalf("StartEpoch with no checkpoint: %d, %v; want 2", e, err)
	}
	// A checkpoint of the new epoch may reuse a size of the old one with
	// other bytes (no fork: the old one is gone).
	if err := j.PutCheckpoint(ctx, 2, []byte("new cp2")); err != nil {
		t.Fatalf("checkpoint of the new epoch: %v", err)
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	j = openT(t, dir, func(o *Options) { o.EncryptionKey = key })
	defer j.Close()
	if e, err := j.Epoch(); err != nil || e != 2 {
		t.Fatalf("epoch after reopen %d, %v; want 2", e, err)
	}
	if n, data, err := j.LastCheckpoint(); err != nil || n != 2 || string(data) != "new cp2" {
		t.Fatalf("last checkpoint after reopen: %d %q %v", n, data, err)
	}
	if j.Size() != 5 {
		t.Fatalf("size %d, want 5", j.Size())
	}
	if seq, err := j.Lookup([]byte("k3")); err != nil || seq != 3 {
		t.Fatalf("idempotency key after a new epoch: %d, %v", seq, err)
	}
	if e, err := j.StartEpoch(ctx); err != nil || e != 3 {
		t.Fatalf("third epoch: %d, %v", e, err)
	}
}

// TestStartEpochMany deletes more checkpoints than one commit takes.
func TestStartEpochMany(t *testing.T) {
	ctx := context.Background()
	j := openT(t, t.TempDir())
	defer j.Close()
	const n = epochDeleteBatch*2 + 7
	for i := range n {
		if _, err := j.Append(ctx, Entry{Build: build(fmt.Sprint("r", i))}); err != nil {
			t.Fatal(err)
		}
		if err := j.PutCheckpoint(ctx, uint64(i+1), []byte(fmt.Sprint(i+1))); err != nil {
			t.Fatal(err)
		}
	}
	if e, err := j.StartEpoch(ctx); err != nil || e != 2 {
		t.Fatalf("StartEpoch: %d, %v", e, err)
	}
	if keys, err := j.checkpointKeys(1); err != nil || len(keys) != 0 {
		t.Fatalf("%d checkpoints left, %v", len(keys), err)
	}
}
