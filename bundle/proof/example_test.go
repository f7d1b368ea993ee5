package proof_test

import (
	"fmt"
	"os"

	"github.com/edgeseal/edgeseal/bundle/proof"
)

// Verify a proof document offline, as `edgeseal verify PROOF.json` does,
// and read one check by name.
func ExampleVerify() {
	raw, err := os.ReadFile("testdata/tampered/payload.changed.json")
	if err != nil {
		panic(err)
	}
	p, err := proof.Parse(raw)
	if err != nil {
		panic(err)
	}
	rep := proof.Verify(p, proof.Options{})
	fmt.Println("verified:", rep.OK())
	fmt.Println("failed:", rep.Failed())
	// Output:
	// verified: false
	// failed: [payload.digest]
}
