package e2e

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/edgeseal/edgeseal/sync/mqtttest"
)

// doctorCLI runs `edgeseal doctor --config CFG args...` with env added.
func doctorCLI(t *testing.T, cfg string, env []string, args ...string) (string, int) {
	t.Helper()
	return cliEnv(t, env, append([]string{"doctor", "--config", cfg, "--timeout", "5s"}, args...)...)
}

// wantLines fails unless out has a line starting with each "LEVEL NAME:".
func wantLines(t *testing.T, what, out string, lines ...string) {
	t.Helper()
	have := map[string]bool{}
	for l := range strings.SplitSeq(out, "\n") {
		f := strings.Fields(l)
		if len(f) >= 2 {
			have[f[0]+" "+f[1]] = true
		}
	}
	for _, l := range lines {
		if !have[l] {
			t.Errorf("%s: no line %q in\n%s", what, l, out)
		}
	}
}

// TestDoctor runs `edgeseal doctor` on a real site: simulator TPM, Badger
// journal, mosquitto with TLS client certificates. All checks pass with
// the agent stopped (TPM, keys, PCRs, DEVICE.json, journal tail, broker,
// clock, disk) and running (through its status); a broker that is down,
// a DEVICE.json of another TPM and a device never enrolled fail with
// what to fix, exit 1.
func TestDoctor(t *testing.T) {
	needAgent(t)
	pki := mqtttest.NewPKI(t)
	brk := mqtttest.Start(t, &mqtttest.Options{TLS: pki.Files()})
	keyFile := filepath.Join(t.TempDir(), "archive.key")
	if _, _, err := loadOrCreateArchiveKey(keyFile); err != nil {
		t.Fatal(err)
	}
	a := newAgentDir(t, agentOpts{sealEvery: 1000, sealInterval: "1h", maxBody: "64 KiB"})
	trust := enrollFile(t, a)
	cfg := filepath.Join(a.dir, "agent.yaml")
	appendFile(t, cfg, fmt.Sprintf("sync:\n  broker: %s\n  archive_key: %s\n  ca: %s\n  cert: %s\n  key: %s\n",
		brk.URL, keyFile+".pub", pki.CAFile, pki.ClientCertFile, pki.ClientKeyFile))
	p := airGapRounds(t, a, 2) // two exports and a seal, twice
	p.stop()

	out, code := doctorCLI(t, cfg, nil, "--trust", trust)
	if code != 0 || strings.Contains(out, "FAIL") {
		t.Fatalf("doctor on a healthy stopped site: exit %d\n%s", code, out)
	}
	wantLines(t, "stopped", out, "ok config:", "ok agent:", "warn tpm:", "ok pcrs:", "ok trust:", "ok keys:",
		"ok recovery:", "ok journal:", "ok broker:", "ok disk:")
	if !strings.Contains(out, "verified") || !strings.Contains(out, "checkpoint at") {
		t.Errorf("journal line does not say what was verified:\n%s", out)
	}
	t.Logf("stopped:\n%s", out)
	// Without the recovery wrap: a warning saying how to make one.
	wrap := filepath.Join(a.dir, "data", "tpm", "data-key.recovery.json")
	if err := os.Rename(wrap, wrap+".away"); err != nil {
		t.Fatal(err)
	}
	out, code = doctorCLI(t, cfg, nil)
	if code != 0 || !strings.Contains(out, "tpm rewrap") {
		t.Fatalf("doctor without a recovery wrap: exit %d\n%s", code, out)
	}
	wantLines(t, "no recovery wrap", out, "warn recovery:")
	if err := os.Rename(wrap+".away", wrap); err != nil {
		t.Fatal(err)
	}

	p = a.start(t, true)
	// The auditor's token from a file (never argv).
	tokFile := filepath.Join(t.TempDir(), "auditor.token")
	if err := os.WriteFile(tokFile, []byte(tokAuditor+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, code = doctorCLI(t, cfg, []string{"EDGESEAL_TOKEN="}, "--token-file", tokFile)
	if code != 0 {
		t.Fatalf("doctor with the agent running: exit %d\n%s", code, out)
	}
	wantLines(t, "running", out, "ok agent:", "ok tpm:", "ok journal:", "ok broker:")
	if !strings.Contains(out, "running") || !strings.Contains(out, "the agent's view") {
		t.Errorf("running agent not reported:\n%s", out)
	}
	out, code = doctorCLI(t, cfg, []string{"EDGESEAL_TOKEN="})
	if code != 0 {
		t.Fatalf("doctor with the agent running, no token: exit %d\n%s", code, out)
	}
	wantLines(t, "running, no token", out, "warn status:")
	out, _ = doctorCLI(t, cfg, []string{"EDGESEAL_TOKEN=" + tokN8N}) // an exporter may not read the status
	wantLines(t, "running, exporter token", out, "FAIL status:")
	if r, err := do(t, unixClient(a.socket), "GET", "http://agent/readyz", "", "", nil); err != nil || r.status != http.StatusOK {
		t.Fatalf("agent not ready after doctor ran beside it: %v %d", err, r.status)
	}
	p.stop()

	brk.Stop()
	out, code = doctorCLI(t, cfg, nil)
	if code != 1 {
		t.Fatalf("doctor with the broker down: exit %d, want 1\n%s", code, out)
	}
	wantLines(t, "broker down", out, "FAIL broker:", "ok journal:")
	if !strings.Contains(out, "fix: check that the broker runs") {
		t.Errorf("broker failure says no fix:\n%s", out)
	}
	t.Logf("broker down:\n%s", out)

	other := newAgentDir(t, agentOpts{sealEvery: 1000, sealInterval: "1h", maxBody: "64 KiB"})
	out, code = doctorCLI(t, cfg, nil, "--trust", enrollFile(t, other))
	if code != 1 {
		t.Fatalf("doctor with another TPM's DEVICE.json: exit %d, want 1\n%s", code, out)
	}
	wantLines(t, "other trust", out, "FAIL trust:")

	out, code = doctorCLI(t, filepath.Join(other.dir, "agent.yaml"), nil)
	if code != 1 {
		t.Fatalf("doctor on a device never started: exit %d, want 1\n%s", code, out)
	}
	wantLines(t, "never started", out, "FAIL journal:")
	fresh := newAgentDir(t, agentOpts{sealEvery: 1000, sealInterval: "1h", maxBody: "64 KiB", notEnrolled: true})
	out, _ = doctorCLI(t, filepath.Join(fresh.dir, "agent.yaml"), nil)
	wantLines(t, "never enrolled", out, "FAIL tpm:")
	if !strings.Contains(out, "edgeseal tpm enroll") {
		t.Errorf("no enrollment fix:\n%s", out)
	}
	if _, err := os.Stat(filepath.Join(fresh.dir, "data", "tpm", "signing-key.json")); err == nil {
		t.Error("doctor created TPM keys")
	}
}
