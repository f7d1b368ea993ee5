package agent

import (
	"bytes"
	"context"
	"fmt"
	"testing"

	"github.com/edgeseal/edgeseal/bundle"
	"github.com/edgeseal/edgeseal/bundle/archivesig"
	"github.com/edgeseal/edgeseal/bundle/bundletest"
	"github.com/edgeseal/edgeseal/bundle/custody"
	"github.com/edgeseal/edgeseal/bundle/merkle"
)

// TestWitnessCheckpointRecords: each archive checkpoint the agent
// accepts is journaled once as an archive.checkpoint record (the signed
// note, the receipt's digest, the consistency proof from the one before)
// and sealed in the next bundle; a receipt that came again adds none; a
// refused (forked) receipt adds none.
func TestWitnessCheckpointRecords(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	r := openWitnessRig(t, dir, dir)
	l := bundletest.MustArchiveLog(t)
	var rcs [][]byte
	var bs []*bundle.Bundle
	for i := range 3 {
		if _, err := r.core.Ingest(ctx, n8n, "api", invoice(fmt.Sprintf("c-%d", i))); err != nil {
			t.Fatal(err)
		}
		res, b := r.seal()
		bs = append(bs, b)
		if i == 2 {
			// A fork at size 2 of the same key: refused, not journaled.
			fork := bundletest.MustArchiveLog(t)
			fork.Pub, fork.Priv = l.Pub, l.Priv
			_, _ = fork.Accept(b)
			rc, err := fork.Accept(b)
			if err != nil {
				t.Fatal(err)
			}
			if err := r.core.JournalReceipt(ctx, res.ID, rc); err == nil {
				t.Fatal("forked receipt journaled")
			}
			break
		}
		rc, err := l.Accept(b)
		if err != nil {
			t.Fatal(err)
		}
		if err := r.core.JournalReceipt(ctx, res.ID, rc); err != nil {
			t.Fatal(err)
		}
		// Again: journaled before, no second record.
		if err := r.core.JournalReceipt(ctx, res.ID, rc); err != nil {
			t.Fatal(err)
		}
		rcs = append(rcs, rc)
	}
	if _, err := r.core.Ingest(ctx, n8n, "api", invoice("c-last")); err != nil {
		t.Fatal(err)
	}
	_, b := r.seal()
	var all []byte
	for _, b := range append(bs, b) {
		all = append(all, b.Files[bundle.PathRecords]...)
	}
	var got []*archivesig.CheckpointRecord
	for line := range bytes.Lines(all) {
		rec, err := custody.ParseRecord(bytes.TrimSuffix(line, []byte("\n")))
		if err != nil {
			t.Fatal(err)
		}
		if rec.Type != custody.TypeArchiveCheckpoint {
			continue
		}
		if rec.Actor.Kind != "archive" || rec.Actor.Via != "sync" {
			t.Fatalf("actor %+v", rec.Actor)
		}
		c, err := archivesig.ParseCheckpointRecord(rec.Body)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, c)
	}
	if len(got) != 2 {
		t.Fatalf("%d archive.checkpoint records, want 2", len(got))
	}
	var prev merkle.Checkpoint
	for i, c := range got {
		_, rc, err := archivesig.ParseReceipt(rcs[i])
		if err != nil {
			t.Fatal(err)
		}
		if c.Checkpoint != rc.ArchiveCheckpoint {
			t.Fatalf("record %d: checkpoint %q, receipt's %q", i, c.Checkpoint, rc.ArchiveCheckpoint)
		}
		cp, err := c.Root()
		if err != nil || cp.Size != uint64(i+1) {
			t.Fatalf("record %d: size %d (%v)", i, cp.Size, err)
		}
		if i == 0 {
			if c.WitnessFrom != 0 || c.WitnessProof != nil {
				t.Fatalf("first record has a proof: %+v", c)
			}
		} else {
			if c.WitnessFrom != prev.Size {
				t.Fatalf("record %d: witnessFrom %d, want %d", i, c.WitnessFrom, prev.Size)
			}
			if err := merkle.VerifyConsistency(merkle.ProofHashes(c.WitnessProof), prev.Size, cp.Size, prev.Root, cp.Root); err != nil {
				t.Fatalf("record %d: %v", i, err)
			}
		}
		prev = cp
	}
}

// TestReceiptsAloneSealNothing: the records a receipt brings (its
// delivery.receipt and archive.checkpoint) are bookkeeping: alone they
// are no reason for another bundle, or the sealer and the sync would
// chase each other (a bundle per receipt, for ever).
func TestReceiptsAloneSealNothing(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	r := openWitnessRig(t, dir, dir)
	l := bundletest.MustArchiveLog(t)
	for i := range 2 {
		if _, err := r.core.Ingest(ctx, n8n, "api", invoice(fmt.Sprintf("r-%d", i))); err != nil {
			t.Fatal(err)
		}
		res, b := r.seal()
		rc, err := l.Accept(b)
		if err != nil {
			t.Fatal(err)
		}
		if err := r.core.JournalReceipt(ctx, res.ID, rc); err != nil {
			t.Fatal(err)
		}
		if again, err := r.core.Seal(ctx); err != nil || again != nil {
			t.Fatalf("receipt %d: seal after it = %v, %v; want nothing pending", i, again, err)
		}
	}
}
