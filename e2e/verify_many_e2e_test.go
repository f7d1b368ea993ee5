package e2e

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/edgeseal/edgeseal/bundle/verify"
)

// runBin runs the real binary and returns its stdout, stderr and exit code.
func runBin(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(agentBin, args...)
	var so, se bytes.Buffer
	cmd.Stdout, cmd.Stderr = &so, &se
	err := cmd.Run()
	if err == nil {
		return so.String(), se.String(), 0
	}
	ee, ok := err.(*exec.ExitError)
	if !ok {
		t.Fatalf("%v: %v", args, err)
	}
	return so.String(), se.String(), ee.ExitCode()
}

// demoBundles runs the real demo and returns its bundles in checkpoint
// order and the trust file.
func demoBundles(t *testing.T) ([]string, string) {
	t.Helper()
	needAgent(t)
	dir := t.TempDir()
	if out, errOut, code := runBin(t, "demo", "--dir", dir); code != 0 {
		t.Fatalf("demo exit %d:\n%s%s", code, out, errOut)
	}
	bundles, _ := filepath.Glob(filepath.Join(dir, "bundles", "*.bundle.tar"))
	sort.Strings(bundles)
	if len(bundles) < 3 {
		t.Fatalf("demo left %d bundles", len(bundles))
	}
	return bundles, filepath.Join(dir, "DEVICE.json")
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	raw, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, raw, 0o644); err != nil {
		t.Fatal(err)
	}
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return lines[len(lines)-1]
}

// tamperPayload writes a copy of src whose first payload changed, the
// manifests recomputed as a tamperer would.
func tamperPayload(t *testing.T, src, dst string) {
	t.Helper()
	b := readBundle(t, src)
	changed := false
	for name, data := range b.Files {
		if strings.HasPrefix(name, "data/payloads/") {
			b.Files[name] = append(bytes.Clone(data), '!')
			changed = true
			break
		}
	}
	if !changed {
		t.Fatalf("%s has no payload", src)
	}
	if err := b.UpdateManifests(); err != nil {
		t.Fatal(err)
	}
	raw, err := b.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, raw, 0o644); err != nil {
		t.Fatal(err)
	}
}

// verify over many bundles: a directory in checkpoint order, one summary
// line, --quiet, --chain and --each, skipped for what had nothing to
// compare, exit 1 for content and 2 for usage.
func TestVerifyMany(t *testing.T) {
	bundles, trust := demoBundles(t)
	first, middle, last := bundles[0], bundles[1], bundles[len(bundles)-1]

	// A directory whose names sort against the checkpoint order.
	dir := t.TempDir()
	for i, b := range bundles {
		copyFile(t, b, filepath.Join(dir, string(rune('z'-i))+".bundle.tar"))
	}
	if err := os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("not a bundle"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, errOut, code := runBin(t, "verify", dir, "--trust", trust)
	if code != 0 || strings.Count(out, "  VERIFIED\n") != len(bundles) {
		t.Fatalf("verify DIR: exit %d\n%s%s", code, out, errOut)
	}
	n := len(bundles)
	wantSummary := fmt.Sprintf("summary: %d bundle(s) as one chain of plant-7/appliance-1: %d verified, 0 not verified", n, n)
	if lastLine(out) != wantSummary || strings.Count(out, "summary:") != 1 {
		t.Errorf("summary line %q, want %q", lastLine(out), wantSummary)
	}
	// The first bundle had no previous state: those checks are skipped,
	// the chained ones compared.
	reports := strings.Split(out, "  VERIFIED\n")
	for _, name := range []string{verify.CheckQuoteResetCount, verify.CheckCounterRising, verify.CheckMerkleConsistency} {
		if !strings.Contains(reports[0], "skipped "+name) || strings.Contains(reports[0], "ok      "+name) {
			t.Errorf("first bundle: %s not skipped:\n%s", name, reports[0])
		}
		if !strings.Contains(reports[1], "ok      "+name) {
			t.Errorf("second bundle, chained: %s not ok:\n%s", name, reports[1])
		}
	}

	// --quiet with everything verified: the summary alone.
	out, _, code = runBin(t, "verify", "--quiet", dir, "--trust", trust)
	if code != 0 || out != wantSummary+"\n" {
		t.Errorf("verify --quiet: exit %d:\n%s", code, out)
	}

	// A gap: as a chain the later bundle fails (exit 1), each on its own
	// both pass, the later one's previous.leaf skipped.
	out, _, code = runBin(t, "verify", first, last, "--trust", trust)
	if code != 1 || !strings.Contains(out, "FAIL    "+verify.CheckCheckpointPrevious) ||
		!strings.HasSuffix(lastLine(out), "1 verified, 1 not verified ("+last+")") {
		t.Errorf("chain with a gap: exit %d:\n%s", code, out)
	}
	out, _, code = runBin(t, "verify", "--each", first, last, "--trust", trust)
	if code != 0 || !strings.Contains(out, "skipped "+verify.CheckPreviousLeaf) ||
		lastLine(out) != "summary: 2 bundle(s) each on its own, device plant-7/appliance-1: 2 verified, 0 not verified" {
		t.Errorf("--each with a gap: exit %d:\n%s", code, out)
	}
	if _, _, code = runBin(t, "verify", "--chain", first, middle, last, "--trust", trust); code != 0 {
		t.Errorf("--chain in order: exit %d", code)
	}

	// A tampered bundle: exit 1; --quiet prints it and the summary only.
	bad := filepath.Join(t.TempDir(), "bad.bundle.tar")
	tamperPayload(t, middle, bad)
	out, _, code = runBin(t, "verify", "--quiet", "--each", first, bad, last, "--trust", trust)
	if code != 1 || strings.Contains(out, first) || !strings.HasPrefix(out, bad+"\n") ||
		!strings.Contains(out, "FAIL    "+verify.CheckPayloadsDigest) || strings.Count(out, "\n  ") != len(verify.CheckNames)+1 ||
		!strings.HasSuffix(lastLine(out), "2 verified, 1 not verified ("+bad+")") {
		t.Errorf("--quiet with a tampered bundle: exit %d:\n%s", code, out)
	}

	// Usage: exit 2, nothing verified.
	empty := t.TempDir()
	for _, args := range [][]string{
		{"verify", "--chain", "--each", first, "--trust", trust},
		{"verify", empty, "--trust", trust},
		{"verify", "--each", "--state-out", filepath.Join(empty, "s.json"), first, last, "--trust", trust},
		{"verify", first, filepath.Join(empty, "missing.bundle.tar"), "--trust", trust},
	} {
		if out, errOut, code := runBin(t, args...); code != 2 || strings.Contains(out, "VERIFIED") {
			t.Errorf("%v: exit %d, want 2:\n%s%s", args, code, out, errOut)
		}
	}

	// verify --help documents the modes and the exit codes.
	out, _, code = runBin(t, "verify", "--help")
	for _, want := range []string{"-chain", "-each", "-quiet", "DIR", "exit 0 verified, 1 not verified, 2 usage"} {
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("verify --help lacks %q:\n%s", want, out)
		}
	}
}
