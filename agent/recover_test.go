package agent

import (
	"context"
	"testing"
)

// TestRecoverOutboxAdoptsUnrecordedSeal: a bundle in the outbox whose
// checkpoint the journal never recorded (a crash between PutOutbox and
// PutCheckpoint) is adopted when the core opens; an outbox entry whose id
// names a size the recorded checkpoint already covers is not read at all,
// so a long outbox does not slow the start (a corrupt old entry does not
// even stop it).
func TestRecoverOutboxAdoptsUnrecordedSeal(t *testing.T) {
	ctx := context.Background()
	// A bundle sealed on one device: its checkpoint's size.
	r1 := openSimRig(t, t.TempDir())
	r1.export(3, "a")
	res, _ := r1.seal()
	raw := outboxBytes(t, r1.j, res)
	size := res.Checkpoint.Size
	r1.close()

	// A journal holding at least that many records and no checkpoint, with
	// the bundle put in its outbox as a seal would before the crash.
	dir := t.TempDir()
	r2 := openSimRig(t, dir)
	r2.export(int(size)+2, "b")
	if _, _, err := r2.j.LastCheckpoint(); err == nil {
		t.Fatal("the journal has a checkpoint before the test put any")
	}
	if err := r2.j.PutOutbox(ctx, res.ID, raw); err != nil {
		t.Fatal(err)
	}
	r2.close()

	r3 := openSimRig(t, dir)
	got, _, err := r3.j.LastCheckpoint()
	if err != nil || got != size {
		t.Fatalf("after open: last checkpoint %d (%v), want %d adopted from outbox %s", got, err, size, res.ID)
	}
	// An entry for a size the checkpoint covers, with bytes that are no
	// bundle: the next open does not read it.
	old := OutboxID(size - 1)
	if err := r3.j.PutOutbox(ctx, old, []byte("not a bundle")); err != nil {
		t.Fatal(err)
	}
	r3.close()
	r4 := openSimRig(t, dir)
	if got, _, err := r4.j.LastCheckpoint(); err != nil || got != size {
		t.Fatalf("reopened: last checkpoint %d (%v), want %d", got, err, size)
	}
}

func TestParseOutboxID(t *testing.T) {
	for _, c := range []struct {
		id string
		n  uint64
		ok bool
	}{
		{OutboxID(0), 0, true},
		{OutboxID(1234), 1234, true},
		{OutboxID(1<<64 - 1), 1<<64 - 1, true},
		{"1234", 0, false},
		{"+0000000000000001234", 0, false},
		{"0000000000000001234x", 0, false},
		{"99999999999999999999", 0, false}, // over 64 bits
	} {
		n, ok := parseOutboxID(c.id)
		if ok != c.ok || (ok && n != c.n) {
			t.Errorf("parseOutboxID(%q) = %d, %v; want %d, %v", c.id, n, ok, c.n, c.ok)
		}
	}
}
