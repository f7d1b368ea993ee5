package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/edgeseal/edgeseal/bundle"
	"github.com/edgeseal/edgeseal/bundle/archivesig"
	"github.com/edgeseal/edgeseal/bundle/bundletest"
	"github.com/edgeseal/edgeseal/bundle/merkle"
)

// TestWitnessArchive: receipts whose archive checkpoints extend each
// other are journaled and the newest checkpoint kept in
// ArchiveCheckpointFile; a receipt of a forked archive log is refused
// (nothing journaled, the bundle stays in the outbox) with one
// archive.inconsistent alarm however often it comes; a larger
// checkpoint without a proof is refused; a receipt that came again is
// not witnessed twice; the kept checkpoint binds a core opened later
// (the stopped agent's import).
func TestWitnessArchive(t *testing.T) {
	ctx := context.Background()
	r, state, alarmp, res, bs := sealedWitnessRig(t, 4, "w")
	main := bundletest.MustArchiveLog(t)
	accept := func(l *bundletest.ArchiveLog, i int) []byte {
		t.Helper()
		rc, err := l.Accept(bs[i])
		if err != nil {
			t.Fatal(err)
		}
		return rc
	}
	kept := func() string {
		t.Helper()
		return keptCheckpoint(t, state, true)
	}
	// The first receipt needs no proof; the second carries one from 1.
	rc0 := accept(main, 0)
	if err := r.core.JournalReceipt(ctx, res[0].ID, rc0); err != nil {
		t.Fatal(err)
	}
	rc1 := accept(main, 1)
	if _, r1, _ := archivesig.ParseReceipt(rc1); r1.WitnessFrom != 1 {
		t.Fatalf("second receipt witnessFrom %d", r1.WitnessFrom)
	}
	if err := r.core.JournalReceipt(ctx, res[1].ID, rc1); err != nil {
		t.Fatal(err)
	}
	cp2, err := main.Checkpoint(2)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := kept(), string(mustBody(t, cp2)); got != want {
		t.Fatalf("kept %q, want %q", got, want)
	}
	// The first receipt again (its entry not yet deleted): journaled
	// before, not witnessed again.
	if err := r.core.JournalReceipt(ctx, res[0].ID, rc0); err != nil {
		t.Fatalf("receipt again: %v", err)
	}

	// A fork: the same first entry, then another, then bundle 2 with a
	// proof from the fork's size 2.
	fork := bundletest.MustArchiveLog(t)
	fork.Pub, fork.Priv = main.Pub, main.Priv
	accept(fork, 0)
	accept(fork, 3)
	forked := accept(fork, 2)
	size := r.j.Size()
	for range 2 {
		err := r.core.JournalReceipt(ctx, res[2].ID, forked)
		if !errors.Is(err, archivesig.ErrInconsistent) || r.j.Size() != size {
			t.Fatalf("forked receipt: %v, journal %d -> %d", err, size, r.j.Size())
		}
	}
	if len(*alarmp) != 1 || (*alarmp)[0].Kind != AlarmArchiveInconsistent || (*alarmp)[0].Seq != -1 {
		t.Fatalf("alarms %+v, want one %s", *alarmp, AlarmArchiveInconsistent)
	}
	if _, ok, err := r.j.OutboxGet(ctx, res[2].ID); err != nil || !ok {
		t.Fatalf("refused bundle left the outbox: %v %v", ok, err)
	}
	if got := kept(); got != string(mustBody(t, cp2)) {
		t.Fatalf("kept checkpoint moved to %q", got)
	}

	// A core opened later (bundles import-receipts) reads the kept
	// checkpoint: the fork is refused there too, the real log accepted.
	rj, err := NewReceiptJournal(Options{Site: "site-a", Device: "dev-1", StateDir: state}, r.j)
	if err != nil {
		t.Fatal(err)
	}
	if err := rj.JournalReceipt(ctx, res[2].ID, forked); !errors.Is(err, archivesig.ErrInconsistent) {
		t.Fatalf("import of a forked receipt: %v", err)
	}
	good := accept(main, 2)
	if err := rj.JournalReceipt(ctx, res[2].ID, good); err != nil {
		t.Fatalf("import of a consistent receipt: %v", err)
	}
	cp3, err := main.Checkpoint(3)
	if err != nil {
		t.Fatal(err)
	}
	if got := kept(); got != string(mustBody(t, cp3)) {
		t.Fatalf("kept %q after the import", got)
	}

	// A larger checkpoint of the same log without its proof, once the
	// archive gave proofs.
	main.NoConsistency = true
	bare := accept(main, 3)
	size = r.j.Size()
	if err := rj.JournalReceipt(ctx, res[3].ID, bare); !errors.Is(err, archivesig.ErrNoConsistency) || r.j.Size() != size {
		t.Fatalf("receipt without proof: %v", err)
	}
	if len(*alarmp) != 1 {
		t.Fatalf("a missing proof raised an alarm: %+v", *alarmp)
	}
}

// TestWitnessArchiveWithoutProofs: an archive that gives no consistency
// proofs (older than the members) has its receipts taken; the same size
// with another root is still refused.
func TestWitnessArchiveWithoutProofs(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	r := openWitnessRig(t, dir, dir)
	l := bundletest.MustArchiveLog(t)
	l.NoConsistency = true
	other := bundletest.MustArchiveLog(t)
	other.Pub, other.Priv = l.Pub, l.Priv
	for i := range 3 {
		if _, err := r.core.Ingest(ctx, n8n, "api", invoice(fmt.Sprintf("o-%d", i))); err != nil {
			t.Fatal(err)
		}
		res, b := r.seal()
		if i == 2 {
			// Another log's checkpoint at the accepted size 2.
			_, _ = other.Accept(b)
			rc, err := other.Accept(b)
			if err != nil {
				t.Fatal(err)
			}
			if err := r.core.JournalReceipt(ctx, res.ID, rc); !errors.Is(err, archivesig.ErrInconsistent) {
				t.Fatalf("another root at the same size: %v", err)
			}
			break
		}
		rc, err := l.Accept(b)
		if err != nil {
			t.Fatal(err)
		}
		if err := r.core.JournalReceipt(ctx, res.ID, rc); err != nil {
			t.Fatalf("receipt %d without proof: %v", i, err)
		}
	}
	cp2, err := l.Checkpoint(2)
	if err != nil {
		t.Fatal(err)
	}
	if got := keptCheckpoint(t, dir, false); got != string(mustBody(t, cp2)) {
		t.Fatalf("kept %q", got)
	}
}

// keptCheckpoint reads ArchiveCheckpointFile in dir, its proofs flag
// as want.
func keptCheckpoint(t *testing.T, dir string, proofs bool) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, ArchiveCheckpointFile))
	if err != nil {
		t.Fatal(err)
	}
	var f witnessFile
	if err := json.Unmarshal(b, &f); err != nil || f.Proofs != proofs {
		t.Fatalf("%s: %q (%v), want proofs %v", ArchiveCheckpointFile, b, err, proofs)
	}
	return f.Checkpoint
}

// mustBody is the checkpoint body of a signed note.
func mustBody(t *testing.T, signed []byte) []byte {
	t.Helper()
	for i := 0; i+1 < len(signed); i++ {
		if signed[i] == '\n' && signed[i+1] == '\n' {
			cp, err := merkle.ParseAnyCheckpoint(signed[:i+1])
			if err != nil {
				t.Fatal(err)
			}
			return cp.Marshal()
		}
	}
	t.Fatalf("not a signed note: %q", signed)
	return nil
}

// openWitnessRig opens a rig in dir on the simulator, its state (the
// archive checkpoint kept) in state, with the policy loaded.
func openWitnessRig(t *testing.T, dir, state string) *rig {
	t.Helper()
	r := openRig(t, dir, "simulator:"+filepath.Join(dir, "sim"), func(o *Options) { o.StateDir = state })
	r.withPolicy()
	return r
}

// sealedWitnessRig opens a witness rig with a state dir of its own, its
// alarms collected in *alarms, and seals n bundles of one export each
// (ids prefix-0, prefix-1, ...); state is the agent's state dir.
func sealedWitnessRig(t *testing.T, n int, prefix string) (r *rig, state string, alarms *[]Alarm, seals []*SealResult, bs []*bundle.Bundle) {
	t.Helper()
	dir := t.TempDir()
	state = filepath.Join(dir, "state")
	if err := os.MkdirAll(state, 0o700); err != nil {
		t.Fatal(err)
	}
	r = openWitnessRig(t, dir, state)
	alarms = new([]Alarm)
	r.core.SetAlarmSink(func(a Alarm) { *alarms = append(*alarms, a) })
	for i := range n {
		if _, err := r.core.Ingest(context.Background(), n8n, "api", invoice(fmt.Sprintf("%s-%d", prefix, i))); err != nil {
			t.Fatal(err)
		}
		s, b := r.seal()
		seals, bs = append(seals, s), append(bs, b)
	}
	return r, state, alarms, seals, bs
}
