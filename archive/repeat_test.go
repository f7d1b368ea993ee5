package archive_test

import (
	"bytes"
	"testing"

	"github.com/edgeseal/edgeseal/bundle/archivesig"
	"github.com/edgeseal/edgeseal/bundle/bundletest"
	"github.com/edgeseal/edgeseal/bundle/proof"
)

// TestRepeatFreshReceipt: a device's first receipt (no consistency
// proof) is lost; the device accepts later receipts (their checkpoints
// grow, other devices' bundles in between); the first bundle comes
// again. The answer is a fresh receipt for the same log entry against
// the log's current checkpoint, its witness proof from the checkpoint of
// the device's newest receipt, which a device that accepted that one
// takes (archivesig.CheckConsistency), and a proof of an export built
// from it verifies; nothing is logged again, across a reopen too. A
// stored receipt that carries a proof, and the newest one, are answered
// unchanged, as is a first receipt of a device given nothing larger
// since.
func TestRepeatFreshReceipt(t *testing.T) {
	ctx := t.Context()
	e := newEnv(t)
	a := newChain(t, 3, bundletest.Options{})
	b := newChain(t, 3, bundletest.Options{Site: "site2", Device: "dev2"})
	c := newChain(t, 1, bundletest.Options{Site: "site3", Device: "dev3"})
	for _, ch := range []*bundletest.Chain{a, b, c} {
		e.approve(ch)
	}
	r0 := e.accept(a, a.Bundles[0]) // its reply lost on the way
	rc := e.accept(c, c.Bundles[0])
	r1 := e.accept(a, a.Bundles[1])
	e.accept(b, b.Bundles[0])
	e.accept(b, b.Bundles[1])
	r2 := e.accept(a, a.Bundles[2])
	e.accept(b, b.Bundles[2])
	newest := e.checkReceipt(r2, raw(t, a.Bundles[2]), a.DeviceName())

	for round := range 2 {
		if round == 1 {
			e.reopen()
		}
		n := e.a.LogSize()
		again, err := e.a.Receive(ctx, a.Opts.Site, a.Opts.Device, raw(t, a.Bundles[0]))
		if err != nil {
			t.Fatal(err)
		}
		e.freshFor(r0, again, raw(t, a.Bundles[0]), a.DeviceName(), newest)
		if e.a.LogSize() != n {
			t.Fatalf("a repeat appended: log %d -> %d", n, e.a.LogSize())
		}
		if got := e.a.Stats().FreshReceipts; got != 1 { // counted since the (re)open
			t.Fatalf("fresh receipts %d, want 1", got)
		}
		// edgeseal verify of an export's proof built with it.
		trust, err := a.Trust.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		exps, err := proof.Exports(a.Bundles[0])
		if err != nil || len(exps) == 0 {
			t.Fatalf("exports: %v", err)
		}
		p, err := proof.Build(proof.Input{Bundle: raw(t, a.Bundles[0]), ExportID: exps[0].ExportID, Principal: exps[0].Principal,
			Trust: trust, Receipt: again, ArchiveKey: e.a.PublicKey()})
		if err != nil {
			t.Fatal(err)
		}
		if rep := proof.Verify(p, proof.Options{Trust: trust, ArchiveKey: e.a.PublicKey()}); !rep.OK() {
			t.Fatalf("proof with the fresh receipt: %v\n%s", rep.Failed(), rep)
		}
		// Those the device can take as they are: unchanged.
		for i, want := range map[int][]byte{1: r1, 2: r2} {
			got, err := e.a.Receive(ctx, a.Opts.Site, a.Opts.Device, raw(t, a.Bundles[i]))
			if err != nil || !bytes.Equal(got, want) {
				t.Fatalf("repeat of bundle %d (a proof from its device's previous receipt): %v, same receipt %v", i, err, bytes.Equal(got, want))
			}
		}
		if got, err := e.a.Receive(ctx, c.Opts.Site, c.Opts.Device, raw(t, c.Bundles[0])); err != nil || !bytes.Equal(got, rc) {
			t.Fatalf("repeat of a device's only receipt: %v, same receipt %v", err, bytes.Equal(got, rc))
		}
	}
}

// freshFor requires got, the answer to a repeat of data whose first
// receipt was first, to be a fresh receipt of the same log entry: it
// verifies (signature, note, inclusion), names what first named, its
// archive checkpoint is the log's current one and its witness proof is
// from the checkpoint of newest, the device's newest receipt, which a
// device that accepted it takes.
func (e *env) freshFor(first, got, data []byte, device string, newest *archivesig.Receipt) *archivesig.Receipt {
	e.t.Helper()
	if bytes.Equal(first, got) {
		e.t.Fatal("a repeat got its stored receipt, not a fresh one")
	}
	_, was, err := archivesig.ParseReceipt(first) // signed by a key rotated away, maybe
	if err != nil {
		e.t.Fatal(err)
	}
	fr := e.checkReceipt(got, data, device)
	if fr.BundleDigest != was.BundleDigest || fr.LogIndex != was.LogIndex || fr.CheckpointSize != was.CheckpointSize ||
		fr.CheckpointRoot != was.CheckpointRoot || fr.Epoch != was.Epoch || fr.RetentionUntil != was.RetentionUntil {
		e.t.Fatalf("fresh receipt %+v names another entry than %+v", fr.Entry(), was.Entry())
	}
	cp, err := fr.ArchiveRoot()
	if err != nil {
		e.t.Fatal(err)
	}
	cur, err := e.a.Checkpoint(e.t.Context())
	if err != nil {
		e.t.Fatal(err)
	}
	if cp.Size != e.a.LogSize() || !bytes.Equal(cur, []byte(fr.ArchiveCheckpoint)) {
		e.t.Fatalf("fresh receipt's checkpoint of size %d, the log's current %q", cp.Size, cur)
	}
	last, err := newest.ArchiveRoot()
	if err != nil {
		e.t.Fatal(err)
	}
	if last.Size < cp.Size && (fr.WitnessFrom != last.Size || len(fr.WitnessProof) == 0) {
		e.t.Fatalf("fresh receipt's witness proof from %d (%d hashes), the device's newest receipt at %d", fr.WitnessFrom, len(fr.WitnessProof), last.Size)
	}
	if _, err := archivesig.CheckConsistency(&last, fr); err != nil {
		e.t.Fatalf("fresh receipt against the device's newest: %v", err)
	}
	return fr
}

// repeated requires got, the answer to a repeat of data whose first
// receipt was first, to be first or a fresh receipt of the same entry
// (first carries no consistency proof; see freshFor).
func (e *env) repeated(first, got, data []byte, device string) {
	e.t.Helper()
	if bytes.Equal(first, got) {
		return
	}
	if _, r, err := archivesig.ParseReceipt(first); err != nil || r.WitnessFrom != 0 {
		e.t.Fatalf("a repeat got another receipt than its stored one, which has a witness proof (%v)", err)
	}
	was := e.checkReceipt(first, data, device)
	fr := e.checkReceipt(got, data, device)
	if fr.LogIndex != was.LogIndex || fr.CheckpointSize != was.CheckpointSize || fr.CheckpointRoot != was.CheckpointRoot {
		e.t.Fatalf("fresh receipt %+v names another entry than %+v", fr.Entry(), was.Entry())
	}
	if fr.WitnessFrom == 0 {
		e.t.Fatal("fresh receipt without a witness proof")
	}
}
