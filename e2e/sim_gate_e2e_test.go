package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestSimulatorNeedsExplicitFlag runs the real binary: a "simulator:DIR"
// TPM is refused by `tpm enroll` without --insecure-simulator and by the
// agent (and every command reading its config) without
// tpm_insecure_simulator: true, each saying how to ask for it; with them it
// works.
func TestSimulatorNeedsExplicitFlag(t *testing.T) {
	needAgent(t)
	dir := t.TempDir()
	enroll := []string{"tpm", "enroll", "--tpm", "simulator:" + filepath.Join(dir, "sim"), "--state", filepath.Join(dir, "state"),
		"--site", "s1", "--device", "d1", "--out", filepath.Join(dir, "DEVICE.json")}
	out, code := cliEnv(t, nil, enroll...)
	if code == 0 || !strings.Contains(out, "--insecure-simulator") {
		t.Fatalf("tpm enroll on the simulator without --insecure-simulator: exit %d, want a refusal naming the flag:\n%s", code, out)
	}
	if _, err := os.Stat(filepath.Join(dir, "DEVICE.json")); err == nil {
		t.Fatal("refused enroll wrote a trust file")
	}
	if out, code := cliEnv(t, nil, append([]string{"tpm", "enroll", "--insecure-simulator"}, enroll[2:]...)...); code != 0 {
		t.Fatalf("tpm enroll --insecure-simulator: exit %d:\n%s", code, out)
	}

	a := newAgentDir(t, agentOpts{sealEvery: 1000, sealInterval: "1h", maxBody: "64KiB"})
	cfgFile := filepath.Join(a.dir, "agent.yaml")
	cfg, err := os.ReadFile(cfgFile)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(cfg), "tpm_insecure_simulator: true\n") {
		t.Fatal("harness config lacks tpm_insecure_simulator")
	}
	if err := os.WriteFile(cfgFile, []byte(strings.Replace(string(cfg), "tpm_insecure_simulator: true\n", "", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"agent", "--config", cfgFile},
		{"doctor", "--config", cfgFile},
	} {
		out, code := cliEnv(t, nil, args...)
		if code == 0 || !strings.Contains(out, "tpm_insecure_simulator: true") {
			t.Errorf("%s without tpm_insecure_simulator: exit %d, want a refusal naming the key:\n%s", args[0], code, out)
		}
	}
	if _, err := os.Stat(a.socket); err == nil {
		t.Error("refused agent created its socket")
	}
}
