package verify_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"github.com/edgeseal/edgeseal/bundle"
	"github.com/edgeseal/edgeseal/bundle/trustfile"
	"github.com/edgeseal/edgeseal/bundle/verify"
)

// An outside verifier runs the conformance corpus (docs/formats.md,
// "Conformance corpus") like this: for each case, verify the previous
// bundles in order from no state, then the case's bundle against the
// state the last one left, and compare with the verdict. A bundle the
// reader refuses is judged "not-verified" by the check "bundle.read".
func ExampleVerify_corpus() {
	dir := "../../testdata/corpus"
	raw, err := os.ReadFile(filepath.Join(dir, "verdicts.json"))
	if err != nil {
		fmt.Println(err)
		return
	}
	var doc struct {
		Cases []struct {
			Name, Trust, Bundle, Verdict, Check string
			Previous                            []string
		}
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		fmt.Println(err)
		return
	}
	file := func(p string) []byte { b, _ := os.ReadFile(filepath.Join(dir, p)); return b }
	// judge returns the verdict and the failed checks of one bundle.
	judge := func(trust *trustfile.Trust, prev *verify.State, p string) (string, []string, *verify.State) {
		b, err := bundle.ReadBytes(file(p), bundle.DefaultLimits)
		if err != nil {
			return "not-verified", []string{"bundle.read"}, nil
		}
		r := verify.Verify(b, trust, prev)
		if !r.OK() {
			return "not-verified", r.Failed(), nil
		}
		return "verified", nil, r.State
	}
	agree := 0
	for _, cs := range doc.Cases {
		trust, err := trustfile.ParseTrust(file(cs.Trust))
		if err != nil {
			fmt.Println(cs.Name, err)
			continue
		}
		var prev *verify.State
		for _, p := range cs.Previous {
			_, _, prev = judge(trust, prev, p)
		}
		verdict, failed, _ := judge(trust, prev, cs.Bundle)
		ok := verdict == cs.Verdict && (cs.Check == "" || slices.Contains(failed, cs.Check))
		if ok {
			agree++
		}
		if cs.Name == "good.chain" || cs.Name == "payload.changed" || cs.Name == "entry.symlink" {
			fmt.Println(cs.Name, verdict, cs.Check, ok)
		}
	}
	fmt.Println("all cases as verdicts.json says:", agree == len(doc.Cases))
	// Output:
	// good.chain verified  true
	// payload.changed not-verified payloads.digest true
	// entry.symlink not-verified bundle.read true
	// all cases as verdicts.json says: true
}
