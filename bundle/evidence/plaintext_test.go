package evidence_test

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/edgeseal/edgeseal/bundle/bundletest"
	"github.com/edgeseal/edgeseal/bundle/custody"
	"github.com/edgeseal/edgeseal/bundle/evidence"
	"github.com/edgeseal/edgeseal/bundle/payloadcipher"
	"github.com/edgeseal/edgeseal/bundle/proof"
)

// TestPackPlaintext: a pack of encrypted exports carries their
// ciphertexts (the proofs verify without any key), and, when the
// plaintexts are given, each as "plaintext" beside its proof, named in
// the index: the pack verifies (pack.plaintext), VERIFY.md's recipe
// checks the ciphertext and the plaintext against the record; a changed
// plaintext fails pack.plaintext and the recipe; a plaintext that is not
// the record's is refused by Build; a plaintext file the index does not
// name fails pack.files.
func TestPackPlaintext(t *testing.T) {
	k, err := payloadcipher.DeriveKey([]byte("evidence plaintext test key....."))
	if err != nil {
		t.Fatal(err)
	}
	f := newFixture(t, 1, bundletest.Options{ContentKey: k.Public()})
	exps, err := proof.Exports(f.Chain.Bundles[0])
	if err != nil || len(exps) < 2 {
		t.Fatalf("%d exports: %v", len(exps), err)
	}
	var proofs []*proof.Proof
	var pts [][]byte
	for _, e := range exps {
		if len(proofs) == 2 {
			break
		}
		pr := f.MustProof(t, 0, e.ExportID)
		if len(pr.Payload) == 0 {
			continue // the chain drew an export whose payload the bundle does not hold
		}
		if rep := proof.Verify(pr, proof.Options{Trust: f.Trust, ArchiveKey: f.Log.Pub}); !rep.OK() {
			t.Fatalf("proof of an encrypted export: %v", rep.Failed())
		}
		r, err := custody.ParseRecord([]byte(pr.Records[0].Record))
		if err != nil {
			t.Fatal(err)
		}
		pt, err := custody.DecryptPayload(r, k, pr.Payload, nil)
		if err != nil {
			t.Fatal(err)
		}
		proofs, pts = append(proofs, pr), append(pts, pt)
	}
	if len(proofs) < 2 {
		t.Fatalf("%d exports with payloads in the bundle, want 2", len(proofs))
	}
	build := func(pts [][]byte) (*evidence.Pack, error) {
		return evidence.Build(t.Context(), evidence.Input{Proofs: proofs, Plaintexts: pts, Consistency: f.consistency,
			Selection: "test", Requester: "auditor@example", Now: time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)})
	}
	if _, err := build([][]byte{pts[1], pts[0]}); err == nil {
		t.Fatal("Build packed another export's plaintext")
	}
	p, err := build([][]byte{pts[0], nil})
	if err != nil {
		t.Fatal(err)
	}
	rep := evidence.Verify(p, proof.Options{})
	if !rep.OK() {
		t.Fatalf("pack with a plaintext: %v", rep.Failed())
	}
	if _, ok := p.Files["data/exports/002/"+evidence.PlaintextFile]; ok {
		t.Fatal("a plaintext packed that was not given")
	}
	if !strings.Contains(string(p.Files[evidence.PathIndex]), `"plaintext": "data/exports/001/plaintext"`) {
		t.Fatalf("the index does not name the plaintext:\n%s", p.Files[evidence.PathIndex])
	}
	dir := filepath.Join(t.TempDir(), "pack")
	if err := p.WriteDir(dir); err != nil {
		t.Fatal(err)
	}
	script := recipe(t, dir)
	if !strings.Contains(script, evidence.PlaintextFile) {
		t.Fatal("VERIFY.md does not check the plaintext")
	}
	if out, err := runRecipe(t, dir, script); err != nil {
		t.Fatalf("VERIFY.md on a pack of encrypted exports: %v\n%s", err, out)
	}
	// A changed plaintext, manifests recomputed.
	ptf := filepath.Join(dir, "data/exports/001", evidence.PlaintextFile)
	changed := slices.Clone(pts[0])
	changed[3] ^= 1
	if err := os.WriteFile(ptf, changed, 0o644); err != nil {
		t.Fatal(err)
	}
	rehash(t, dir)
	if out, err := runRecipe(t, dir, script); err == nil {
		t.Fatalf("VERIFY.md passed a changed plaintext:\n%s", out)
	}
	rp, err := evidence.ReadDir(dir, evidence.DefaultLimits)
	if err != nil {
		t.Fatal(err)
	}
	if rep := evidence.Verify(rp, proof.Options{}); rep.OK() || !slices.Contains(rep.Failed(), evidence.CheckPlaintext) {
		t.Fatalf("a changed plaintext: %v", rep.Failed())
	}
	// A plaintext the index does not name.
	q, err := build(nil)
	if err != nil {
		t.Fatal(err)
	}
	q.Files["data/exports/002/"+evidence.PlaintextFile] = pts[1]
	rehashPack(q)
	if rep := evidence.Verify(q, proof.Options{}); rep.OK() || !slices.Contains(rep.Failed(), evidence.CheckFiles) {
		t.Fatalf("an unnamed plaintext: %v", rep.Failed())
	}
}
