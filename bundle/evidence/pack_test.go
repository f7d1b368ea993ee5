package evidence_test

import (
	"strings"

	"github.com/edgeseal/edgeseal/bundle/verify"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/edgeseal/edgeseal/bundle/bundletest"
	"github.com/edgeseal/edgeseal/bundle/evidence"
	"github.com/edgeseal/edgeseal/bundle/proof"
)

// TestPackOneExport: the pack of one export verifies, and no file of the
// bag holds another export's id, record or payload.
func TestPackOneExport(t *testing.T) {
	f := newFixture(t, 3, bundletest.Options{})
	exps := f.exports(t, 1)
	e := exps[0]
	dir := f.pack(t, f.MustProof(t, 1, e.ExportID))
	p, err := evidence.ReadDir(dir, evidence.DefaultLimits)
	if err != nil {
		t.Fatal(err)
	}
	rep := evidence.Verify(p, proof.Options{})
	if !rep.OK() {
		t.Fatalf("pack: %v\n%+v", rep.Failed(), rep.Checks)
	}
	if len(rep.Exports) != 1 || rep.Exports[0].ExportID != e.ExportID {
		t.Fatalf("exports %+v", rep.Exports)
	}
	// Every other export of every bundle of the chain.
	for i, b := range f.Chain.Bundles {
		recs, _ := b.Records()
		all, _ := proof.Exports(b)
		for _, o := range all {
			if o.ExportID == e.ExportID {
				continue
			}
			payload := f.payloadOf(i, o)
			if payload == nil {
				payload = []byte("purged payload, not in any bundle: never matches anything here at all")
			}
			_, st, err := b.Statement()
			if err != nil {
				t.Fatal(err)
			}
			rec := recs[o.Seq-st.Predicate.FirstSeq]
			for name, data := range p.Files {
				if what := leaks(data, o.ExportID, rec, payload); what != "" {
					t.Errorf("%s holds %s of export %s", name, what, o.ExportID)
				}
			}
		}
	}
	// The export's own payload is there.
	if got, _ := os.ReadFile(filepath.Join(dir, "data/exports/001/payload")); !slices.Equal(got, f.payloadOf(1, e)) {
		t.Fatal("the export's payload is not in the pack")
	}
}

// TestVerifyMDRecipe runs VERIFY.md's command blocks as written in the
// pack's folder: they pass on the pack, and fail once a payload byte is
// changed, also with the manifests recomputed.
func TestVerifyMDRecipe(t *testing.T) {
	f := newFixture(t, 3, bundletest.Options{})
	exps := f.exports(t, 2)
	dir := f.pack(t, f.MustProof(t, 2, exps[0].ExportID), f.MustProof(t, 0, f.exports(t, 0)[1].ExportID))
	script := recipe(t, dir)
	if out, err := runRecipe(t, dir, script); err != nil {
		t.Fatalf("VERIFY.md on the pack: %v\n%s\n--- script\n%s", err, out, script)
	}
	payload := filepath.Join(dir, "data/exports/001/payload")
	orig, _ := os.ReadFile(payload)
	changed := slices.Clone(orig)
	changed[5] ^= 1
	if err := os.WriteFile(payload, changed, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := runRecipe(t, dir, script); err == nil {
		t.Fatalf("VERIFY.md passed a changed payload:\n%s", out)
	}
	// Recompute both manifests: the bag passes, the record's digest does not.
	rehash(t, dir)
	out, err := runRecipe(t, dir, script)
	if err == nil {
		t.Fatalf("VERIFY.md passed a changed payload with manifests recomputed:\n%s", out)
	}
	if p, err := evidence.ReadDir(dir, evidence.DefaultLimits); err != nil {
		t.Fatal(err)
	} else if rep := evidence.Verify(p, proof.Options{}); rep.OK() || !slices.Contains(rep.Failed(), "data/exports/001: "+proof.CheckPayloadDigest) {
		t.Fatalf("edgeseal's pack check on the changed payload: %v", rep.Failed())
	}
}

// TestPackTwoCheckpoints: exports of two bundles receipted at different
// archive log sizes carry the consistency proof between the checkpoints;
// without a source of consistency proofs they are reported not compared.
func TestPackTwoCheckpoints(t *testing.T) {
	f := newFixture(t, 3, bundletest.Options{})
	a, b := f.MustProof(t, 0, f.exports(t, 0)[0].ExportID), f.MustProof(t, 2, f.exports(t, 2)[0].ExportID)
	dir := f.pack(t, a, b)
	p, err := evidence.ReadDir(dir, evidence.DefaultLimits)
	if err != nil {
		t.Fatal(err)
	}
	rep := evidence.Verify(p, proof.Options{Trust: f.Trust, ArchiveKey: f.Log.PKIX()})
	if !rep.OK() {
		t.Fatalf("pack: %v\n%+v", rep.Failed(), rep.Checks)
	}
	idx, err := evidence.ParseIndex(p.Files[evidence.PathIndex])
	if err != nil {
		t.Fatal(err)
	}
	if len(idx.Archive.Checkpoints) != 2 || len(idx.Archive.Consistency) != 1 {
		t.Fatalf("archive %+v", idx.Archive)
	}
	// A consistency proof changed fails archive.consistency.
	idx.Archive.Consistency[0].Proof[0][0] ^= 1
	p.Files[evidence.PathIndex] = mustJSON(t, idx)
	if rep := evidence.Verify(p, proof.Options{}); !slices.Contains(rep.Failed(), evidence.CheckConsistency) {
		t.Fatalf("changed consistency proof: %v", rep.Failed())
	}
	// Offline (no consistency proofs): it verifies with archive.consistency
	// not compared, and says so.
	off, err := evidence.Build(t.Context(), evidence.Input{Proofs: []*proof.Proof{a, b}})
	if err != nil {
		t.Fatal(err)
	}
	rep = evidence.Verify(off, proof.Options{})
	c, _ := (&verify.Report{Checks: rep.Checks}).Get(evidence.CheckConsistency)
	if !rep.OK() || !c.NotCompared || !strings.Contains(c.Detail, "not compared") {
		t.Fatalf("offline pack of two checkpoints: %v %+v", rep.Failed(), c)
	}
}

// TestPackPurgedExport: the pack of an export whose payload a purge
// record deleted holds no payload file, carries the purge record, and
// verifies, by edgeseal and by VERIFY.md.
func TestPackPurgedExport(t *testing.T) {
	f := newFixture(t, 1, bundletest.Options{})
	all, _ := proof.Exports(f.Chain.Bundles[0])
	for _, e := range all {
		if f.payloadOf(0, e) != nil {
			continue
		}
		dir := f.pack(t, f.MustProof(t, 0, e.ExportID))
		if _, err := os.Stat(filepath.Join(dir, "data/exports/001/payload")); !os.IsNotExist(err) {
			t.Fatalf("purged payload file: %v", err)
		}
		p, err := evidence.ReadDir(dir, evidence.DefaultLimits)
		if err != nil {
			t.Fatal(err)
		}
		if rep := evidence.Verify(p, proof.Options{}); !rep.OK() {
			t.Fatalf("pack of a purged export: %v", rep.Failed())
		}
		if out, err := runRecipe(t, dir, recipe(t, dir)); err != nil {
			t.Fatalf("VERIFY.md: %v\n%s", err, out)
		}
		return
	}
	t.Fatal("the chain purged no payload")
}

// TestPackUnpinnedSaysSo: a pack checked without a pinned trust file or
// archive key is checked against the ones it carries, and the report says
// so on archive.checkpoints and on each export's trust.device and
// receipt.signature; pinned, none of them says "not pinned".
func TestPackUnpinnedSaysSo(t *testing.T) {
	f := newFixture(t, 2, bundletest.Options{})
	p, err := evidence.ReadDir(f.pack(t, f.MustProof(t, 1, f.exports(t, 1)[0].ExportID)), evidence.DefaultLimits)
	if err != nil {
		t.Fatal(err)
	}
	detail := func(rep *evidence.Report) map[string]string {
		d := map[string]string{}
		for _, c := range rep.Checks {
			d[c.Name] = c.Detail
		}
		for _, c := range rep.Exports[0].Report.Checks {
			d[c.Name] = c.Detail
		}
		return d
	}
	rep := evidence.Verify(p, proof.Options{})
	if !rep.OK() {
		t.Fatalf("unpinned: %v", rep.Failed())
	}
	d := detail(rep)
	for _, name := range []string{evidence.CheckCheckpoints, proof.CheckTrust, proof.CheckReceiptSignature} {
		if !strings.Contains(d[name], "not pinned") {
			t.Errorf("unpinned: %s says %q, not that it is not pinned", name, d[name])
		}
	}
	rep = evidence.Verify(p, proof.Options{Trust: f.Trust, ArchiveKey: f.Log.PKIX()})
	if !rep.OK() {
		t.Fatalf("pinned: %v", rep.Failed())
	}
	for name, det := range detail(rep) {
		if strings.Contains(det, "not pinned") {
			t.Errorf("pinned: %s says %q", name, det)
		}
	}
}
