package agent

import (
	"context"
	"crypto/sha256"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/edgeseal/edgeseal/bundle/archivesig"
	"github.com/edgeseal/edgeseal/bundle/wire"
)

// TestJournalParsedReceipts: receipts handed over parsed (as the sync
// publisher parsed and verified them) are journaled as JournalReceipts
// journals their bytes: one delivery.receipt record each, under its
// entry's key and with the digest of the receipt's bytes, and the
// archive.checkpoint records, their checkpoints witnessed (the newest
// kept as the one accepted last); a batch with a receipt not parsed
// journals nothing.
func TestJournalParsedReceipts(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	r := openRig(t, dir, "simulator:"+filepath.Join(dir, "sim"))
	r.withPolicy()
	a := r.archive()
	var ids []string
	var rs []archivesig.ParsedReceipt
	for i := range 2 {
		if _, err := r.core.Ingest(ctx, n8n, "api", invoice(fmt.Sprintf("p-%d", i))); err != nil {
			t.Fatal(err)
		}
		res, _ := r.seal()
		rc, err := a.Receive(ctx, "site-a", "dev-1", outboxBytes(t, r.j, res))
		if err != nil {
			t.Fatal(err)
		}
		env, pr, err := archivesig.ParseReceipt(rc)
		if err != nil {
			t.Fatal(err)
		}
		ids, rs = append(ids, res.ID), append(rs, archivesig.ParsedReceipt{Raw: rc, Envelope: env, Receipt: pr})
	}
	size := r.j.Size()
	unparsed := []archivesig.ParsedReceipt{rs[0], {Raw: rs[1].Raw}}
	if err := r.core.JournalParsedReceipts(ctx, ids, unparsed); err == nil || r.j.Size() != size {
		t.Fatalf("batch with a receipt not parsed: %v, journal %d -> %d", err, size, r.j.Size())
	}
	if err := r.core.JournalParsedReceipts(ctx, ids, rs); err != nil {
		t.Fatal(err)
	}
	if r.j.Size() != size+4 {
		t.Fatalf("journal %d -> %d, want 2 receipt and 2 archive.checkpoint records", size, r.j.Size())
	}
	for i, id := range ids {
		d, err := r.core.delivery(id)
		if err != nil || d == nil || d.Outbox != id || d.Receipt != wire.FormatHash(sha256.Sum256(rs[i].Raw)) ||
			d.Bundle != rs[i].Receipt.BundleDigest || d.LogIndex != rs[i].Receipt.LogIndex {
			t.Fatalf("delivery record of %s: %+v, %v", id, d, err)
		}
	}
	newest, err := rs[1].Receipt.ArchiveRoot()
	if err != nil {
		t.Fatal(err)
	}
	r.core.witness.mu.Lock()
	last := r.core.witness.last
	r.core.witness.mu.Unlock()
	if last == nil || *last != newest {
		t.Errorf("archive checkpoint accepted last %+v, want the newest receipt's %+v", last, newest)
	}
	// The same receipts again, as bytes: journaled already, nothing added.
	if err := r.core.JournalReceipts(ctx, ids, [][]byte{rs[0].Raw, rs[1].Raw}); err != nil || r.j.Size() != size+4 {
		t.Fatalf("same receipts again: %v, journal %d", err, r.j.Size())
	}
}
