package evidence_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/edgeseal/edgeseal/bundle"
	"github.com/edgeseal/edgeseal/bundle/bundletest"
	"github.com/edgeseal/edgeseal/bundle/custody"
	"github.com/edgeseal/edgeseal/bundle/evidence"
	"github.com/edgeseal/edgeseal/bundle/proof"
)

// TestCorpusBundles builds proofs and packs from the conformance corpus's
// good bundles: those the agent sealed with the TPM 2.0 reference
// simulator (real TPM structures for tpm2_checkquote), a rotated signing
// key, a format 1 bundle, a signed policy and PCR values an operator
// authorized after enrollment (version 2 trust); each proof and pack
// verifies, and VERIFY.md passes as written.
func TestCorpusBundles(t *testing.T) {
	corpus := filepath.Join("..", "..", "testdata", "corpus")
	for _, tc := range []struct {
		name, trust string
		bundles     []string
	}{
		{"agent", "site2-gw1.json", []string{"gw1-0.tar", "gw1-1.tar"}},
		{"rotation", "site1-dev3.json", []string{"dev3-0.tar", "dev3-1.tar"}},
		{"format1", "format1.json", []string{"format1.tar"}},
		{"policy", "site1-dev5.json", []string{"dev5-0.tar"}},
		{"pcr-authorized", "site1-dev4.json", []string{"dev4-0.tar", "dev4-1.tar", "dev4-2.tar", "dev4-3.tar"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			trust, err := os.ReadFile(filepath.Join(corpus, "trust", tc.trust))
			if err != nil {
				t.Fatal(err)
			}
			log := bundletest.MustArchiveLog(t)
			// The device's PCR authorizations, from every bundle of its chain.
			var auths [][]byte
			for _, name := range tc.bundles {
				b, err := bundle.ReadFile(filepath.Join(corpus, "good", name))
				if err != nil {
					t.Fatal(err)
				}
				recs, _ := b.Records()
				for _, r := range recs {
					if rec, err := custody.ParseRecord(r); err == nil && rec.Type == custody.TypePCRsAuthorized {
						auths = append(auths, rec.Body)
					}
				}
			}
			var proofs []*proof.Proof
			for _, name := range tc.bundles {
				raw, err := os.ReadFile(filepath.Join(corpus, "good", name))
				if err != nil {
					t.Fatal(err)
				}
				b, err := bundle.ReadBytes(raw, bundle.DefaultLimits)
				if err != nil {
					t.Fatal(err)
				}
				rc, err := log.Accept(b)
				if err != nil {
					t.Fatal(err)
				}
				exps, err := proof.Exports(b)
				if err != nil {
					t.Fatal(err)
				}
				for _, e := range exps {
					p, err := proof.Build(proof.Input{Bundle: raw, ExportID: e.ExportID, Principal: e.Principal, Trust: trust, Receipt: rc, ArchiveKey: log.PKIX(), PCRAuthorizations: auths})
					if err != nil {
						t.Fatalf("%s %s: %v", name, e.ExportID, err)
					}
					if rep := proof.Verify(p, proof.Options{Trust: trust, ArchiveKey: log.PKIX()}); !rep.OK() {
						t.Fatalf("%s %s: %v\n%s", name, e.ExportID, rep.Failed(), rep)
					}
					if len(proofs) < 4 && (len(proofs) == 0 || proofs[len(proofs)-1].Seal == nil || string(proofs[len(proofs)-1].Seal) != string(p.Seal)) {
						proofs = append(proofs, p)
					}
				}
			}
			if len(proofs) == 0 {
				t.Fatal("no export in the bundles")
			}
			pk, err := evidence.Build(t.Context(), evidence.Input{Proofs: proofs, Consistency: func(_ context.Context, old, size uint64) ([][32]byte, error) { return log.Consistency(old, size) }})
			if err != nil {
				t.Fatal(err)
			}
			if rep := evidence.Verify(pk, proof.Options{}); !rep.OK() {
				t.Fatalf("pack: %v", rep.Failed())
			}
			dir := filepath.Join(t.TempDir(), "pack")
			if err := pk.WriteDir(dir); err != nil {
				t.Fatal(err)
			}
			out, err := runRecipe(t, dir, recipe(t, dir))
			if err != nil {
				t.Fatalf("VERIFY.md: %v\n%s", err, out)
			}
			if md, _ := os.ReadFile(filepath.Join(dir, "VERIFY.md")); tc.name == "format1" != strings.Contains(string(md), "format 1 bundle") {
				t.Fatal("VERIFY.md and the bundle format disagree")
			}
		})
	}
}
