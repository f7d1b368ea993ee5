package agent

import (
	"context"
	"errors"
	"testing"

	"github.com/edgeseal/edgeseal/bundle"
	"github.com/edgeseal/edgeseal/bundle/archivesig"
	"github.com/edgeseal/edgeseal/bundle/bundletest"
)

// TestWitnessFreshReceipt: the reply to the device's first bundle is
// lost; the agent accepts the next receipts (the first of them taken
// unchecked, the checkpoints growing with another device's entries in
// between) and sends the first bundle again. The fresh receipt the
// archive answers (the current checkpoint, proven from the device's
// newest receipt's) is journaled, its checkpoint kept,
// and the bundle leaves the outbox. The next receipt, proven from the
// device's newest receipt's checkpoint as before (the fresh one did not
// move it), is taken as proven from a checkpoint the agent accepted. A
// receipt proven from an accepted checkpoint by a proof that does not
// hold (another log from there) is refused with one alarm; one proven
// from a checkpoint the agent never accepted is refused without one; one
// of another root at a size the agent accepted is refused as a fork
// whatever it is proven from.
func TestWitnessFreshReceipt(t *testing.T) {
	ctx := context.Background()
	r, state, alarmp, seals, bs := sealedWitnessRig(t, 6, "f")
	var ids []string
	for _, s := range seals {
		ids = append(ids, s.ID)
	}
	other, err := bundletest.NewChain(ctx, nil, 3, bundletest.Options{Site: "site-b", Device: "other"})
	if err != nil {
		t.Fatal(err)
	}
	main := bundletest.MustArchiveLog(t)
	accept := func(l *bundletest.ArchiveLog, b *bundle.Bundle) []byte {
		t.Helper()
		rc, err := l.Accept(b)
		if err != nil {
			t.Fatal(err)
		}
		return rc
	}
	journal := func(i int, rc []byte) {
		t.Helper()
		if err := r.core.JournalReceipt(ctx, ids[i], rc); err != nil {
			t.Fatalf("receipt for bundle %d: %v", i, err)
		}
		if err := r.core.DeleteOutbox(ctx, ids[i]); err != nil {
			t.Fatal(err)
		}
	}
	kept := func(size uint64) {
		t.Helper()
		cp, err := main.Checkpoint(size)
		if err != nil {
			t.Fatal(err)
		}
		if got := keptCheckpoint(t, state, true); got != string(mustBody(t, cp)) {
			t.Fatalf("kept %q, want the checkpoint of size %d", got, size)
		}
	}

	rc0 := accept(main, bs[0]) // lost on the way
	journal(1, accept(main, bs[1]))
	accept(main, other.Bundles[0])
	journal(2, accept(main, bs[2]))
	accept(main, other.Bundles[1])
	kept(4)

	// The fresh one: the log's current checkpoint (5), proven from 4.
	fresh, err := main.Again(rc0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, f, _ := archivesig.ParseReceipt(fresh); f.WitnessFrom != 4 {
		t.Fatalf("fresh receipt proven from %d", f.WitnessFrom)
	}
	journal(0, fresh)
	if _, ok, err := r.j.OutboxGet(ctx, ids[0]); err != nil || ok {
		t.Fatalf("bundle 0 still in the outbox: %v %v", ok, err)
	}
	if d, err := r.core.delivery(ids[0]); err != nil || d == nil {
		t.Fatalf("bundle 0: no delivery record: %v", err)
	}
	kept(5)

	// The next receipt is proven from 4 (accepted), to 6.
	rc3 := accept(main, bs[3])
	if _, r3, _ := archivesig.ParseReceipt(rc3); r3.WitnessFrom != 4 {
		t.Fatalf("next receipt proven from %d", r3.WitnessFrom)
	}
	journal(3, rc3)
	kept(6)
	if len(*alarmp) != 0 {
		t.Fatalf("alarms %+v", *alarmp)
	}

	// Another log from 4 on (same key): its receipt proven from 5 does
	// not hold against the accepted checkpoint of size 5 (the fresh
	// receipt's).
	fork, err := main.Fork()
	if err != nil {
		t.Fatal(err)
	}
	accept(fork, bs[0])
	accept(fork, bs[1])
	accept(fork, other.Bundles[0])
	accept(fork, bs[2])
	accept(fork, bs[3]) // 5: bundle 3 where main has the other device's
	accept(fork, other.Bundles[1])
	accept(fork, other.Bundles[2])
	forked := accept(fork, bs[4]) // size 8, proven from 5
	forkedFrom5, err := fork.Again(forked, 5)
	if err != nil {
		t.Fatal(err)
	}
	size := r.j.Size()
	for range 2 {
		if err := r.core.JournalReceipt(ctx, ids[4], forkedFrom5); !errors.Is(err, archivesig.ErrInconsistent) || r.j.Size() != size {
			t.Fatalf("receipt proven from an accepted checkpoint by a proof that does not hold: %v, journal %d -> %d", err, size, r.j.Size())
		}
	}
	if len(*alarmp) != 1 || (*alarmp)[0].Kind != AlarmArchiveInconsistent {
		t.Fatalf("alarms %+v, want one %s", *alarmp, AlarmArchiveInconsistent)
	}

	// Proven from a checkpoint never accepted (1: the lost receipt's).
	rc4 := accept(main, bs[4])
	from1, err := main.Again(rc4, 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.core.JournalReceipt(ctx, ids[4], from1); !errors.Is(err, archivesig.ErrNoConsistency) || r.j.Size() != size {
		t.Fatalf("receipt proven from a checkpoint never accepted: %v", err)
	}
	if len(*alarmp) != 1 {
		t.Fatalf("alarms %+v after a proof from a checkpoint never accepted", *alarmp)
	}
	journal(4, rc4)
	kept(7)

	// Another root at an accepted size below the kept one (6), proven
	// from an accepted checkpoint (4) where both logs agree: a fork.
	other6, err := main.Fork()
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range []*bundle.Bundle{bs[0], bs[1], other.Bundles[0], bs[2], other.Bundles[1]} {
		accept(other6, b)
	}
	at6, err := other6.Again(accept(other6, bs[5]), 4)
	if err != nil {
		t.Fatal(err)
	}
	size = r.j.Size()
	if err := r.core.JournalReceipt(ctx, ids[5], at6); !errors.Is(err, archivesig.ErrInconsistent) || r.j.Size() != size {
		t.Fatalf("another root at an accepted size, proven from an accepted checkpoint: %v, journal %d -> %d", err, size, r.j.Size())
	}
	if len(*alarmp) != 2 {
		t.Fatalf("alarms %+v, want a second %s", *alarmp, AlarmArchiveInconsistent)
	}
	kept(7)
}
