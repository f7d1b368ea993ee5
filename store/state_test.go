package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"testing"
	"time"
)

func TestPurgePayload(t *testing.T) {
	ctx := context.Background()
	j := openT(t, t.TempDir())
	defer j.Close()
	data := []byte("secret export bytes")
	d := sha256.Sum256(data)
	a, err := j.Append(ctx, Entry{Build: build("export"), Payloads: []Payload{{Digest: d, Data: data}}})
	if err != nil {
		t.Fatal(err)
	}
	never := sha256.Sum256([]byte("never stored"))
	if _, err := j.Payload(never); !errors.Is(err, ErrNotFound) {
		t.Fatalf("never stored: %v", err)
	}
	if err := j.PurgePayload(ctx, never); !errors.Is(err, ErrNotFound) {
		t.Fatalf("purge of never stored: %v", err)
	}
	if err := j.PurgePayload(ctx, d); err != nil {
		t.Fatal(err)
	}
	if _, err := j.Payload(d); !errors.Is(err, ErrPurged) || errors.Is(err, ErrNotFound) {
		t.Fatalf("after purge: %v, want ErrPurged", err)
	}
	if err := j.PurgePayload(ctx, d); err != nil {
		t.Fatalf("second purge: %v", err)
	}
	rec, err := j.Record(a.Seq)
	if err != nil || leafHash(rec) != a.Leaf {
		t.Fatalf("record after purge: %v", err)
	}
	if err := j.Scrub(ctx, nil); err != nil {
		t.Fatal(err)
	}
	// The same bytes exported again are stored again.
	if _, err := j.Append(ctx, Entry{Build: build("again"), Payloads: []Payload{{Digest: d, Data: data}}}); err != nil {
		t.Fatal(err)
	}
	if p, err := j.Payload(d); err != nil || !bytes.Equal(p, data) {
		t.Fatalf("payload re-stored: %q %v", p, err)
	}
}

// TestPayloadState: present, purged, never stored, and present again
// once the same bytes are stored after a purge; checked across a reopen.
func TestPayloadState(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	j := openT(t, dir)
	data := []byte("payload state")
	d := sha256.Sum256(data)
	state := func(want string) {
		t.Helper()
		p, g, err := j.PayloadState(d)
		got := map[[2]bool]string{{false, false}: "none", {true, false}: "present", {false, true}: "purged"}[[2]bool{p, g}]
		if err != nil || got != want {
			t.Fatalf("state %q (%v), want %q", got, err, want)
		}
	}
	state("none")
	if _, err := j.Append(ctx, Entry{Build: build("export"), Payloads: []Payload{{Digest: d, Data: data}}}); err != nil {
		t.Fatal(err)
	}
	state("present")
	if err := j.PurgePayload(ctx, d); err != nil {
		t.Fatal(err)
	}
	state("purged")
	j.Close()
	j = openT(t, dir)
	defer j.Close()
	state("purged")
	if _, err := j.Append(ctx, Entry{Build: build("again"), Payloads: []Payload{{Digest: d, Data: data}}}); err != nil {
		t.Fatal(err)
	}
	state("present")
}

func TestPayloadDedupe(t *testing.T) {
	ctx := context.Background()
	j := openT(t, t.TempDir())
	defer j.Close()
	data := bytes.Repeat([]byte("big"), 40000) // over the value threshold
	d := sha256.Sum256(data)
	p := []Payload{{Digest: d, Data: data}}
	if _, err := j.AppendBatch(ctx, []Entry{{Build: build("1"), Payloads: p}, {Build: build("2"), Payloads: p}}); err != nil {
		t.Fatal(err)
	}
	if _, err := j.Append(ctx, Entry{Build: build("3"), Payloads: p}); err != nil {
		t.Fatal(err)
	}
	if got, err := j.Payload(d); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("payload: %v", err)
	}
}

func TestCheckpoints(t *testing.T) {
	ctx := context.Background()
	j := openT(t, t.TempDir())
	defer j.Close()
	if _, _, err := j.LastCheckpoint(); !errors.Is(err, ErrNotFound) {
		t.Fatalf("no checkpoint yet: %v", err)
	}
	appendN(t, j, 10, "c")
	var re *RangeError
	if err := j.PutCheckpoint(ctx, 11, []byte("future")); !errors.As(err, &re) {
		t.Fatalf("checkpoint beyond size: %v", err)
	}
	for _, n := range []uint64{3, 10, 7} {
		if err := j.PutCheckpoint(ctx, n, fmt.Appendf(nil, "cp %d", n)); err != nil {
			t.Fatal(err)
		}
	}
	if err := j.PutCheckpoint(ctx, 10, []byte("cp 10")); err != nil {
		t.Fatalf("same bytes again: %v", err)
	}
	err := j.PutCheckpoint(ctx, 10, []byte("forked"))
	var ce *ConflictError
	if !errors.As(err, &ce) || ce.Kind != "checkpoint" || ce.Key != "10" {
		t.Fatalf("fork: %v, want *ConflictError", err)
	}
	size, data, err := j.LastCheckpoint()
	if err != nil || size != 10 || string(data) != "cp 10" {
		t.Fatalf("last checkpoint: %d %q %v", size, data, err)
	}
}

func TestOutbox(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	j := openT(t, dir)
	for _, id := range []string{"b2", "b1", "b3"} {
		if err := j.PutOutbox(ctx, id, []byte("bundle "+id)); err != nil {
			t.Fatal(err)
		}
	}
	if err := j.PutOutbox(ctx, "b1", []byte("bundle b1")); err != nil {
		t.Fatalf("same bytes again: %v", err)
	}
	var ce *ConflictError
	if err := j.PutOutbox(ctx, "b1", []byte("other")); !errors.As(err, &ce) || ce.Kind != "outbox" {
		t.Fatalf("conflict: %v", err)
	}
	if err := j.PutOutbox(ctx, "", []byte("x")); err == nil {
		t.Fatal("empty id accepted")
	}
	if err := j.DeleteOutbox(ctx, "b2"); err != nil {
		t.Fatal(err)
	}
	if err := j.DeleteOutbox(ctx, "b2"); err != nil {
		t.Fatalf("repeat delete: %v", err)
	}
	j.Close()
	j = openT(t, dir)
	defer j.Close()
	var got []string
	if err := j.Outbox(ctx, func(id string, data []byte) error {
		got = append(got, id+"="+string(data))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(got) != "[b1=bundle b1 b3=bundle b3]" {
		t.Fatalf("outbox after delete and reopen: %v", got)
	}
	var ids []string
	if err := j.OutboxIDs(ctx, func(id string) error { ids = append(ids, id); return nil }); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(ids) != "[b1 b3]" {
		t.Fatalf("outbox ids: %v", ids)
	}
	if data, ok, err := j.OutboxGet(ctx, "b3"); err != nil || !ok || string(data) != "bundle b3" {
		t.Fatalf("get b3: %q %v %v", data, ok, err)
	}
	if data, ok, err := j.OutboxGet(ctx, "b2"); err != nil || ok || data != nil {
		t.Fatalf("get deleted b2: %q %v %v", data, ok, err)
	}
}

// Close waits for a running Records; calls made from its callback after
// Close began fail with ErrClosed instead of deadlocking.
func TestCloseDuringCallback(t *testing.T) {
	j := openT(t, t.TempDir())
	appendN(t, j, 3, "cb")
	closed := make(chan error, 1)
	err := j.Records(context.Background(), 0, 3, func(seq uint64, rec []byte) error {
		if seq != 0 {
			return nil
		}
		go func() { closed <- j.Close() }()
		for !j.closing.Load() {
			time.Sleep(time.Millisecond)
		}
		if _, err := j.Record(1); !errors.Is(err, ErrClosed) {
			return fmt.Errorf("nested read during close: %v", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-closed:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not return after Records finished")
	}
}

func TestWalksHonourContext(t *testing.T) {
	j := openT(t, t.TempDir())
	defer j.Close()
	appendN(t, j, 600, "ctx")
	ctx, cancel := context.WithCancel(context.Background())
	n := 0
	err := j.Records(ctx, 0, 600, func(uint64, []byte) error {
		if n++; n == 10 {
			cancel()
		}
		return nil
	})
	if !errors.Is(err, context.Canceled) || n >= 600 {
		t.Fatalf("records after cancel: %v after %d", err, n)
	}
	if err := j.Scrub(ctx, nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("scrub with cancelled ctx: %v", err)
	}
	if _, err := j.Append(ctx, Entry{Build: build("late")}); !errors.Is(err, context.Canceled) {
		t.Fatalf("append with cancelled ctx: %v", err)
	}
	if j.Size() != 600 {
		t.Fatalf("size %d", j.Size())
	}
}

// NextCheckpoint finds the checkpoint that first covered a record;
// OutboxSize counts entries and bytes, small and value-log sized alike.
func TestNextCheckpointAndOutboxSize(t *testing.T) {
	ctx := context.Background()
	j := openT(t, t.TempDir())
	defer j.Close()
	for i := range 20 {
		if _, err := j.Append(ctx, Entry{Build: build(fmt.Sprint(i))}); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range []uint64{3, 7, 20} {
		if err := j.PutCheckpoint(ctx, n, fmt.Appendf(nil, "cp %d", n)); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []struct{ after, want uint64 }{{0, 3}, {2, 3}, {3, 7}, {6, 7}, {7, 20}, {19, 20}} {
		size, data, err := j.NextCheckpoint(c.after)
		if err != nil || size != c.want || string(data) != fmt.Sprintf("cp %d", c.want) {
			t.Fatalf("NextCheckpoint(%d) = %d %q %v, want %d", c.after, size, data, err, c.want)
		}
	}
	if _, _, err := j.NextCheckpoint(20); !errors.Is(err, ErrNotFound) {
		t.Fatalf("NextCheckpoint past the last: %v", err)
	}
	if n, b, err := j.OutboxSize(ctx); err != nil || n != 0 || b != 0 {
		t.Fatalf("empty outbox: %d %d %v", n, b, err)
	}
	small, big := bytes.Repeat([]byte("s"), 100), bytes.Repeat([]byte("b"), 300<<10)
	if err := j.PutOutbox(ctx, "a", small); err != nil {
		t.Fatal(err)
	}
	if err := j.PutOutbox(ctx, "b", big); err != nil {
		t.Fatal(err)
	}
	n, b, err := j.OutboxSize(ctx)
	want := int64(len(small) + len(big))
	if err != nil || n != 2 || b < want || b > want+256 {
		t.Fatalf("outbox size: %d entries %d bytes %v, want 2 and about %d", n, b, err, want)
	}
	if err := j.DeleteOutbox(ctx, "b"); err != nil {
		t.Fatal(err)
	}
	if n, b, err := j.OutboxSize(ctx); err != nil || n != 1 || b != int64(len(small)) {
		t.Fatalf("after delete: %d %d %v", n, b, err)
	}
}
