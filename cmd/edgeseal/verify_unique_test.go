package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestVerifyRefusesMalleatedCopies runs `edgeseal verify` on the golden
// bundles of bundle/testdata/unique: the genuine one verifies (exit 0),
// every copy changed without the device key (an edited Bagging-Date, a
// second or duplicated signature, ...) exits 1 naming the check of
// cases.txt.
func TestVerifyRefusesMalleatedCopies(t *testing.T) {
	dir := filepath.Join("..", "..", "bundle", "testdata", "unique")
	trust := filepath.Join(dir, "trust.json")
	if out, code := runCmd(t, "verify", filepath.Join(dir, "good.tar"), "--trust", trust); code != 0 {
		t.Fatalf("good.tar: exit %d:\n%s", code, out)
	}
	cases, err := os.ReadFile(filepath.Join(dir, "cases.txt"))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for line := range strings.SplitSeq(strings.TrimSpace(string(cases)), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			t.Fatalf("cases.txt line %q", line)
		}
		n++
		t.Run(f[0], func(t *testing.T) {
			out, code := runCmd(t, "verify", filepath.Join(dir, f[0]), "--trust", trust)
			if code != 1 {
				t.Fatalf("exit %d, want 1:\n%s", code, out)
			}
			if !strings.Contains(out, "FAIL "+f[1]) {
				t.Fatalf("output does not fail %s:\n%s", f[1], out)
			}
		})
	}
	if n < 5 {
		t.Fatalf("only %d cases", n)
	}
}
