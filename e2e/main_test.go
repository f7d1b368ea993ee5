package e2e

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/edgeseal/edgeseal/bundle/custody"
	"github.com/edgeseal/edgeseal/bundle/verify"
	"github.com/edgeseal/edgeseal/internal/demo"
)

// The demo seals bundles that the verify command then accepts, chained;
// a tampered copy is refused with exit 1 and the failed check named;
// unreadable input and bad usage exit 2.
func TestDemoThenVerify(t *testing.T) {
	dir := t.TempDir()
	out, code := runCmd(t, "demo", "--dir", dir)
	if code != 0 {
		t.Fatalf("demo exit %d:\n%s", code, out)
	}
	if !strings.Contains(out, "VERIFIED") || strings.Contains(out, "NOT VERIFIED") {
		t.Fatalf("demo summary lacks a clean verification:\n%s", out)
	}
	out0 := out
	// The demo's data key is wrapped to a recovery key in its dir, and it says so.
	if !strings.Contains(out, filepath.Join(dir, "recovery.key")) {
		t.Fatalf("demo does not name its recovery key:\n%s", out)
	}
	for _, f := range []string{filepath.Join(dir, "recovery.key"), filepath.Join(dir, "recovery.key.pub"), filepath.Join(dir, "tpm", "data-key.recovery.json")} {
		if _, err := os.Stat(f); err != nil {
			t.Fatalf("demo recovery file: %v", err)
		}
	}
	bundles, _ := filepath.Glob(filepath.Join(dir, "bundles", "*.bundle.tar"))
	sort.Strings(bundles)
	if len(bundles) != demo.Rounds() {
		t.Fatalf("demo left %d bundles, want %d", len(bundles), demo.Rounds())
	}
	trust := filepath.Join(dir, "DEVICE.json")
	// The demo's keys are bound to the PCR-policy key it made, and the
	// first bundle journals the authorization of the enrollment values.
	if tb, err := os.ReadFile(trust); err != nil || !strings.Contains(string(tb), `"pcrPolicyKey"`) {
		t.Fatalf("DEVICE.json without a PCR policy key: %v", err)
	}
	if rb, err := os.ReadFile(bundles[0]); err != nil || !bytes.Contains(rb, []byte(`"type":"`+custody.TypePCRsAuthorized+`"`)) {
		t.Fatalf("first demo bundle lacks the %s record: %v", custody.TypePCRsAuthorized, err)
	}

	args := append([]string{"verify", "--trust", trust}, bundles...)
	out, code = runCmd(t, args...)
	if code != 0 || strings.Count(out, "  VERIFIED") != len(bundles) {
		t.Fatalf("verify chain exit %d:\n%s", code, out)
	}

	// The demo leaves an auditor's evidence pack of one export, built by
	// the archive through its read API: it verifies with the binary and,
	// step by step, with VERIFY.md's standard-tool commands.
	pack := filepath.Join(dir, demo.EvidenceDir)
	if !strings.Contains(out0, pack) {
		t.Fatalf("demo does not name its evidence pack %s:\n%s", pack, out0)
	}
	if out, code := runCmd(t, "verify", pack, "--trust", trust); code != 0 || !strings.Contains(out, "PACK VERIFIED") {
		t.Fatalf("verify of the demo's evidence pack: exit %d\n%s", code, out)
	}
	if out, err := runVerifyMD(t, pack); err != nil {
		t.Fatalf("the demo pack's VERIFY.md: %v\n%s", err, out)
	}
	if !strings.Contains(out0, "sign in as auditor, password") {
		t.Fatalf("demo does not end with the dashboard's auditor login:\n%s", out0)
	}

	// --json, --previous and --state-out.
	state := filepath.Join(t.TempDir(), "state.json")
	out, code = runCmd(t, "verify", bundles[1], "--trust", trust, "--previous", bundles[0], "--json", "--state-out", state)
	if code != 0 {
		t.Fatalf("verify --previous exit %d:\n%s", code, out)
	}
	var res []verifyJSON
	if err := json.Unmarshal([]byte(out), &res); err != nil || len(res) != 1 || !res[0].Verified {
		t.Fatalf("json output %v: %s", err, out)
	}
	out, code = runCmd(t, "verify", bundles[2], "--trust", trust, "--previous", state)
	if code != 0 {
		t.Fatalf("verify with a state file exit %d:\n%s", code, out)
	}
	// Out of order: the newer state makes the older bundle fail.
	out, code = runCmd(t, "verify", bundles[0], "--trust", trust, "--previous", state)
	if code != 1 || !strings.Contains(out, "FAIL") {
		t.Fatalf("replayed bundle: exit %d:\n%s", code, out)
	}

	// A changed payload, manifests recomputed by the tamperer.
	bad := filepath.Join(t.TempDir(), "bad.tar")
	tamperPayload(t, bundles[0], bad)
	out, code = runCmd(t, "verify", bad, "--trust", trust)
	if code != 1 || !strings.Contains(out, "FAIL") || !strings.Contains(out, verify.CheckPayloadsDigest) {
		t.Fatalf("tampered payload: exit %d:\n%s", code, out)
	}

	// Exit 2: usage and unreadable input.
	for _, args := range [][]string{
		{"verify", bundles[0]},
		{"verify", "--trust", trust},
		{"verify", filepath.Join(dir, "missing.tar"), "--trust", trust},
		{"verify", trust, "--trust", trust},
		{"verify", bundles[0], "--trust", bundles[0]},
		{"nonsense"},
	} {
		if out, code := runCmd(t, args...); code != 2 {
			t.Errorf("%v: exit %d, want 2:\n%s", args, code, out)
		}
	}
}

func TestEnrollWritesTrust(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "DEVICE.json")
	msg, code := runCmd(t, "tpm", "enroll", "--insecure-simulator", "--tpm", "simulator:"+filepath.Join(dir, "sim"), "--state", filepath.Join(dir, "state"),
		"--site", "s1", "--device", "d1", "--out", out)
	if code != 0 {
		t.Fatalf("enroll exit %d: %s", code, msg)
	}
	tr := readTrust(t, out)
	if tr.DeviceName() != "s1/d1" || !strings.Contains(msg, tr.KeyID) {
		t.Fatalf("trust for %s, output %q", tr.DeviceName(), msg)
	}
	// The simulator's enrollment makes a recovery key beside the trust file
	// and wraps the data key to it; enrolling again keeps both.
	for _, f := range []string{filepath.Join(dir, "DEVICE.recovery.key"), filepath.Join(dir, "DEVICE.recovery.key.pub"), filepath.Join(dir, "state", "data-key.recovery.json")} {
		if _, err := os.Stat(f); err != nil {
			t.Fatalf("enroll on the simulator: %v\n%s", err, msg)
		}
	}
	if msg2, code := runCmd(t, "tpm", "enroll", "--insecure-simulator", "--tpm", "simulator:"+filepath.Join(dir, "sim"), "--state", filepath.Join(dir, "state"),
		"--site", "s1", "--device", "d1", "--out", out); code != 0 || !strings.Contains(msg2, tr.KeyID) {
		t.Fatalf("second enroll exit %d: %s", code, msg2)
	}
	if _, code := runCmd(t, "tpm", "enroll", "--site", "s1"); code != 2 {
		t.Fatalf("enroll without --device: exit %d, want 2", code)
	}
}
