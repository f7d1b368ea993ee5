package agent

import (
	"context"
	"testing"

	"github.com/edgeseal/edgeseal/bundle/archivesig"
	"github.com/edgeseal/edgeseal/bundle/bundletest"
)

// TestWitnessBelowFirst: the replies to the device's first two bundles
// are lost and the third's comes first: the agent takes it unchecked, as
// its first. The stored receipts of the first two (checkpoints below it,
// the second proven from the first's, neither ever accepted) come when
// the bundles are sent again: the agent has nothing from before its
// first checkpoint to check them against, so it takes them unwitnessed
// (journaled with their delivery, out of the outbox, no alarm), keeps
// the checkpoint it had, and records none of theirs. The first size is
// kept across a restart. A receipt of another root at the first size is
// still refused as inconsistent, with its alarm.
func TestWitnessBelowFirst(t *testing.T) {
	ctx := context.Background()
	r, state, alarmp, seals, bs := sealedWitnessRig(t, 6, "b")
	var ids []string
	for _, s := range seals {
		ids = append(ids, s.ID)
	}
	other, err := bundletest.NewChain(ctx, nil, 3, bundletest.Options{Site: "site-b", Device: "other"})
	if err != nil {
		t.Fatal(err)
	}
	main := bundletest.MustArchiveLog(t)
	accept := func(l *bundletest.ArchiveLog, i int) []byte {
		t.Helper()
		rc, err := l.Accept(bs[i])
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

	rc0 := accept(main, 0) // size 1, lost
	if _, err := main.Accept(other.Bundles[0]); err != nil {
		t.Fatal(err)
	}
	rc1 := accept(main, 1) // size 3, proven from 1, lost
	if _, r1, _ := archivesig.ParseReceipt(rc1); r1.WitnessFrom != 1 {
		t.Fatalf("second receipt proven from %d", r1.WitnessFrom)
	}
	if _, err := main.Accept(other.Bundles[1]); err != nil {
		t.Fatal(err)
	}
	journal(2, accept(main, 2)) // size 5, proven from 3: the agent's first, unchecked
	kept(5)

	for _, i := range []int{1, 0} {
		size := r.j.Size()
		journal(i, map[int][]byte{0: rc0, 1: rc1}[i])
		if d, err := r.core.delivery(ids[i]); err != nil || d == nil {
			t.Fatalf("bundle %d: no delivery record: %v", i, err)
		}
		if r.j.Size() != size+1 {
			t.Fatalf("bundle %d: journal %d -> %d, want its delivery record alone", i, size, r.j.Size())
		}
		kept(5)
	}
	for _, size := range []uint64{1, 3} {
		if _, ok, err := r.core.acceptedAt(size); err != nil || ok {
			t.Fatalf("an archive.checkpoint record of size %d: %v %v", size, ok, err)
		}
	}
	if len(*alarmp) != 0 {
		t.Fatalf("alarms %+v", *alarmp)
	}

	// The next receipt is proven from 5 as usual.
	journal(3, accept(main, 3))
	kept(6)

	// After a restart the first size still holds.
	r.core.witness = witnessState{}
	if err := r.core.loadWitness(); err != nil || r.core.witness.first != 5 {
		t.Fatalf("first after a reload: %d (%v), want 5", r.core.witness.first, err)
	}

	// Another log with the same key, where size 5 has another root: a
	// receipt of it is a fork at the first size, refused with an alarm.
	forked, err := main.Fork()
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range []int{0, 4} {
		if _, err := forked.Accept(bs[b]); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := forked.Accept(other.Bundles[0]); err != nil {
		t.Fatal(err)
	}
	if _, err := forked.Accept(other.Bundles[1]); err != nil {
		t.Fatal(err)
	}
	rc5, err := forked.Accept(bs[5]) // size 5 on the fork: another root at an accepted size
	if err != nil {
		t.Fatal(err)
	}
	size := r.j.Size()
	if err := r.core.JournalReceipt(ctx, ids[5], rc5); err == nil || r.j.Size() != size {
		t.Fatalf("another root at the first size: %v, journal %d -> %d", err, size, r.j.Size())
	}
	if len(*alarmp) != 1 || (*alarmp)[0].Kind != AlarmArchiveInconsistent {
		t.Fatalf("alarms %+v, want one %s", *alarmp, AlarmArchiveInconsistent)
	}
}
