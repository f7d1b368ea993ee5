package agent

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/edgeseal/edgeseal/archive"
	"github.com/edgeseal/edgeseal/bundle"
	"github.com/edgeseal/edgeseal/bundle/custody"
	"github.com/edgeseal/edgeseal/bundle/trustfile"
	"github.com/edgeseal/edgeseal/store"
	"github.com/edgeseal/edgeseal/tpm"
	"github.com/edgeseal/edgeseal/tpm/simulator"
)

// TestNewEpochAfterTPMClear: the journal of a device whose TPM was
// replaced is sealed again from size 0 by the new key: the old epoch's
// undelivered bundles leave the outbox for files, the key.recover record
// is journaled once, and the first bundle of the new epoch has no
// previous checkpoint and verifies under the new trust with every record
// of the journal in it.
func TestNewEpochAfterTPMClear(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	r := openSimRig(t, dir)
	oldKey := r.tpm.Identity().KeyID
	rcs := r.export(4, "a")
	res1, _ := r.seal()
	// The first bundle is delivered to the archive of the old key.
	rc1, err := r.archive().Receive(ctx, "site-a", "dev-1", outboxBytes(t, r.j, res1))
	if err != nil {
		t.Fatal(err)
	}
	if err := r.core.JournalReceipt(ctx, res1.ID, rc1); err != nil {
		t.Fatal(err)
	}
	if err := r.core.DeleteOutbox(ctx, res1.ID); err != nil {
		t.Fatal(err)
	}
	rcs = append(rcs, r.export(3, "b")...)
	r.seal()
	rcs = append(rcs, r.export(2, "c")...) // journaled, never sealed
	dataKey, err := r.tpm.DataKey(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var oldIDs []string
	if err := r.j.OutboxIDs(ctx, func(id string) error { oldIDs = append(oldIDs, id); return nil }); err != nil || len(oldIDs) != 1 {
		t.Fatalf("outbox before: %v %v", oldIDs, err)
	}
	r.close()

	// The board is swapped: another simulator, the old blobs retired.
	state := filepath.Join(dir, "tpm")
	if _, err := tpm.Open(ctx, "simulator:"+filepath.Join(dir, "sim2"), tpm.Options{StateDir: state, Simulator: simulator.Open}); !errors.As(err, new(*tpm.ClearedError)) {
		t.Fatalf("open on the new board: %v, want *tpm.ClearedError", err)
	}
	if _, err := tpm.RetireState(state); err != nil {
		t.Fatal(err)
	}
	tp, err := tpm.Open(ctx, "simulator:"+filepath.Join(dir, "sim2"), tpm.Options{StateDir: state, Simulator: simulator.Open, Create: true, DataKey: dataKey})
	if err != nil {
		t.Fatal(err)
	}
	defer tp.Close()
	j, err := store.Open(ctx, store.Options{Dir: filepath.Join(dir, "journal"), EncryptionKey: dataKey})
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	prev, err := LastKeyID(j)
	if err != nil || prev != oldKey {
		t.Fatalf("LastKeyID %q, %v; want %s", prev, err, oldKey)
	}
	epoch, files, err := StartEpoch(ctx, j, dir)
	if err != nil || epoch != 2 || len(files) != 1 {
		t.Fatalf("StartEpoch: epoch %d, files %v, %v", epoch, files, err)
	}
	for i, id := range oldIDs {
		want := filepath.Join(RetiredOutboxDir(dir, 1), id+".bundle")
		fi, err := os.Stat(want)
		if err != nil || files[i] != want || fi.Mode().Perm() != 0o600 {
			t.Fatalf("retired bundle %s: %v %v", want, err, fi)
		}
	}
	body := KeyRecoverBody{ID: "r1", Device: "site-a/dev-1", Case: RecoverNewTPM, KeyID: tp.Identity().KeyID,
		PreviousKeyID: prev, RecoveryKeyID: "sha256:00", Epoch: epoch, RetiredBundles: len(files)}
	seq, dup, err := JournalKeyRecover(ctx, j, body, time.Now().Add(-time.Hour))
	if err != nil || dup {
		t.Fatalf("journal key.recover: %v (dup %v)", err, dup)
	}
	if seq2, dup, err := JournalKeyRecover(ctx, j, body, time.Now()); err != nil || !dup || seq2 != seq {
		t.Fatalf("second journal of the same recovery: seq %d dup %v %v; want the first, %d", seq2, dup, err, seq)
	}
	size := j.Size()

	core, err := Open(ctx, Options{Site: "site-a", Device: "dev-1"}, j, tp)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	if err := j.OutboxIDs(ctx, func(string) error { n++; return nil }); err != nil || n != 0 {
		t.Fatalf("outbox after the new epoch: %d entries, %v", n, err)
	}
	res, err := core.Seal(ctx)
	if err != nil || res == nil {
		t.Fatalf("first seal of the new epoch: %v", err)
	}
	if res.FirstSeq != 0 || res.Checkpoint.Size <= size {
		t.Fatalf("first seal covers %d..%d, want 0..>%d", res.FirstSeq, res.Checkpoint.Size, size)
	}
	b, err := bundle.Read(bytes.NewReader(outboxBytes(t, j, res)), bundle.DefaultLimits)
	if err != nil {
		t.Fatal(err)
	}
	tr, err := trustfile.NewTrust("site-a", "dev-1", BundleIdentity(tp.Identity()))
	if err != nil {
		t.Fatal(err)
	}
	st := mustVerify(t, b, tr, nil)
	if st.Checkpoint != string(res.Checkpoint.Marshal()) {
		t.Fatalf("verified checkpoint %q", st.Checkpoint)
	}
	recs, err := b.Records()
	if err != nil {
		t.Fatal(err)
	}
	exports, recovers := map[string]bool{}, 0
	for _, rec := range recs {
		pr, err := custody.ParseRecord(rec)
		if err != nil {
			t.Fatal(err)
		}
		switch pr.Type {
		case custody.TypeExport:
			var eb custody.ExportBody
			if err := json.Unmarshal(pr.Body, &eb); err != nil {
				t.Fatal(err)
			}
			exports[eb.ExportID] = true
		case custody.TypeKeyRecover:
			recovers++
			var kb KeyRecoverBody
			if err := json.Unmarshal(pr.Body, &kb); err != nil || kb != body {
				t.Fatalf("key.recover body %+v, %v; want %+v", kb, err, body)
			}
		}
	}
	for _, rc := range rcs {
		if !exports[rc.ExportID] {
			t.Fatalf("export %s is not in the new epoch's first bundle", rc.ExportID)
		}
	}
	if recovers != 1 {
		t.Fatalf("%d key.recover records, want 1", recovers)
	}
	// The old epoch's receipt is not this epoch's: a new bundle that got
	// the outbox id of a delivered old one (checkpoint sizes restart) is
	// not taken for delivered.
	if d, err := core.delivery(res1.ID); err != nil || d != nil {
		t.Fatalf("old epoch's receipt seen in the new epoch: %+v, %v", d, err)
	}
	// The receipt of the new bundle, from the archive that knows the new
	// key, is journaled under the epoch's key: by the receipt journal of
	// `bundles import-receipts` (air gap), and the core then finds it
	// journaled already.
	a2 := newTestArchive(t, tr)
	rc2, err := a2.Receive(ctx, "site-a", "dev-1", outboxBytes(t, j, res))
	if err != nil {
		t.Fatal(err)
	}
	rj, err := NewReceiptJournal(Options{Site: "site-a", Device: "dev-1"}, j)
	if err != nil {
		t.Fatal(err)
	}
	if err := rj.JournalReceipt(ctx, res.ID, rc2); err != nil {
		t.Fatal(err)
	}
	before := j.Size()
	if err := core.JournalReceipt(ctx, res.ID, rc2); err != nil || j.Size() != before {
		t.Fatalf("the core journaled the receipt again (%d -> %d records): %v", before, j.Size(), err)
	}
	if d, err := core.delivery(res.ID); err != nil || d == nil || d.Outbox != res.ID {
		t.Fatalf("new epoch's receipt: %+v, %v", d, err)
	}
	if _, err := j.Lookup(EpochDeliveryKey(2, res.ID)); err != nil {
		t.Fatalf("receipt of the new epoch not under its epoch's key: %v", err)
	}
	if _, err := j.Lookup(DeliveryKey(res1.ID)); err != nil {
		t.Fatalf("receipt of the old epoch: %v", err)
	}
	if got := string(EpochDeliveryKey(2, "x")); got != "delivery/e2/x" || string(EpochDeliveryKey(1, "x")) != "delivery/x" {
		t.Fatalf("EpochDeliveryKey %q", got)
	}
}

// newTestArchive is an archive that has enrolled and approved trust.
func newTestArchive(t *testing.T, trust *trustfile.Trust) *archive.Archive {
	t.Helper()
	ctx := context.Background()
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	a, err := archive.Open(ctx, archive.Options{Dir: t.TempDir(), Key: key})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	raw, err := trust.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	req, err := archive.ParseEnrollRequest(raw)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Devices().Enroll(ctx, req); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Devices().Approve(ctx, trust.DeviceName(), "", "test"); err != nil {
		t.Fatal(err)
	}
	return a
}
