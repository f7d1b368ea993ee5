package agent

import (
	"context"
	"errors"
	"testing"

	"github.com/edgeseal/edgeseal/bundle"
	"github.com/edgeseal/edgeseal/bundle/archivesig"
	"github.com/edgeseal/edgeseal/bundle/bundletest"
)

// TestWitnessReceiptsOutOfOrder: the archive answers bundles admitted
// together with one checkpoint, and replies can reach the agent out of
// order (the broker delivers again, after a reconnect, replies behind
// newer ones). A receipt whose checkpoint is smaller than the one
// accepted last is journaled when that checkpoint was accepted before,
// in the same batch or an earlier one, with no alarm and the kept
// checkpoint unchanged; a smaller one with another root at its size is
// still a fork, refused with one alarm.
func TestWitnessReceiptsOutOfOrder(t *testing.T) {
	ctx := context.Background()
	r, state, alarmp, seals, bs := sealedWitnessRig(t, 7, "o")
	var ids []string
	for _, s := range seals {
		ids = append(ids, s.ID)
	}
	main, err := bundletest.NewArchiveLog()
	if err != nil {
		t.Fatal(err)
	}
	group := func(l *bundletest.ArchiveLog, is ...int) [][]byte {
		t.Helper()
		var in []*bundle.Bundle
		for _, i := range is {
			in = append(in, bs[i])
		}
		rcs, err := l.AcceptGroup(in...)
		if err != nil {
			t.Fatal(err)
		}
		return rcs
	}
	delivered := func(i int) bool {
		t.Helper()
		d, err := r.core.delivery(ids[i])
		if err != nil {
			t.Fatal(err)
		}
		return d != nil
	}
	rc0 := group(main, 0)[0]
	if err := r.core.JournalReceipt(ctx, ids[0], rc0); err != nil {
		t.Fatal(err)
	}

	// Bundles 1 and 2 admitted together (checkpoint 3), then 3
	// (checkpoint 4); 1's receipt arrives last, in the same batch.
	g12 := group(main, 1, 2)
	rc3 := group(main, 3)[0]
	if err := r.core.JournalReceipts(ctx, []string{ids[2], ids[3], ids[1]}, [][]byte{g12[1], rc3, g12[0]}); err != nil {
		t.Fatalf("batch with a receipt of an earlier checkpoint last: %v", err)
	}
	for i := 1; i <= 3; i++ {
		if !delivered(i) {
			t.Errorf("bundle %d: no delivery record", i)
		}
	}
	cp4, err := main.Checkpoint(4)
	if err != nil {
		t.Fatal(err)
	}
	if got := keptCheckpoint(t, state, true); got != string(mustBody(t, cp4)) {
		t.Fatalf("kept %q, want checkpoint 4", got)
	}

	// Bundles 4 and 5 together (checkpoint 6), then 6 (checkpoint 7),
	// each receipt alone; 4's arrives after 6's.
	g45 := group(main, 4, 5)
	rc6 := group(main, 6)[0]
	if err := r.core.JournalReceipt(ctx, ids[5], g45[1]); err != nil {
		t.Fatal(err)
	}
	if err := r.core.JournalReceipt(ctx, ids[6], rc6); err != nil {
		t.Fatal(err)
	}
	// A fork of the same size first: another root at 6.
	fork, err := bundletest.NewArchiveLog()
	if err != nil {
		t.Fatal(err)
	}
	fork.Pub, fork.Priv = main.Pub, main.Priv
	group(fork, 0)
	group(fork, 2, 1)
	group(fork, 3)
	forked := group(fork, 4, 5)[0]
	size := r.j.Size()
	if err := r.core.JournalReceipt(ctx, ids[4], forked); !errors.Is(err, archivesig.ErrInconsistent) || r.j.Size() != size {
		t.Fatalf("forked receipt of a smaller checkpoint: %v, journal %d -> %d", err, size, r.j.Size())
	}
	if len(*alarmp) != 1 || (*alarmp)[0].Kind != AlarmArchiveInconsistent {
		t.Fatalf("alarms %+v, want one %s", *alarmp, AlarmArchiveInconsistent)
	}
	if err := r.core.JournalReceipt(ctx, ids[4], g45[0]); err != nil {
		t.Fatalf("receipt of a checkpoint accepted before, after a larger one: %v", err)
	}
	if !delivered(4) {
		t.Error("bundle 4: no delivery record")
	}
	if len(*alarmp) != 1 {
		t.Errorf("alarms %+v after the consistent receipt", *alarmp)
	}
	cp7, err := main.Checkpoint(7)
	if err != nil {
		t.Fatal(err)
	}
	if got := keptCheckpoint(t, state, true); got != string(mustBody(t, cp7)) {
		t.Fatalf("kept %q, want checkpoint 7", got)
	}
}
