package evidence_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/edgeseal/edgeseal/bundle/evidence"
	"github.com/edgeseal/edgeseal/bundle/proof"
)

// Build the evidence pack of one export's proof, write it as a folder,
// read it back and check it, as `edgeseal evidence` and `edgeseal verify
// PACK` do.
func ExampleBuild() {
	raw, err := os.ReadFile("../proof/testdata/good.json")
	if err != nil {
		panic(err)
	}
	pr, err := proof.Parse(raw)
	if err != nil {
		panic(err)
	}
	pack, err := evidence.Build(context.Background(), evidence.Input{Proofs: []*proof.Proof{pr}, Selection: "export " + pr.ExportID})
	if err != nil {
		panic(err)
	}
	tmp, err := os.MkdirTemp("", "pack")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(tmp)
	dir := filepath.Join(tmp, "pack")
	if err := pack.WriteDir(dir); err != nil {
		panic(err)
	}
	back, err := evidence.ReadDir(dir, evidence.DefaultLimits)
	if err != nil {
		panic(err)
	}
	rep := evidence.Verify(back, proof.Options{})
	fmt.Println("verified:", rep.OK(), "exports:", len(rep.Exports))
	_, err = os.Stat(filepath.Join(dir, "VERIFY.md"))
	fmt.Println("VERIFY.md:", err == nil)
	// Output:
	// verified: true exports: 1
	// VERIFY.md: true
}
