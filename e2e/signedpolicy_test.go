package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/edgeseal/edgeseal/agent/policy/signed"
	"github.com/edgeseal/edgeseal/agent/policy/signed/signedtest"
)

// signedPolicy is an agent directory switched to a signed policy: the
// admins alice and bob (threshold 2), DEVICE.json pinning their set, the
// config naming policy.signed.json and admins.json.
type signedPolicy struct {
	keys       []*signed.Key
	trust      string // DEVICE.json
	cfgPath    string
	yamlPath   string // the policy text that is signed
	signedPath string
}

// useSignedPolicy enrolls a's TPM (`tpm enroll --policy-admins`) and
// points its config at a signed policy; write one with version before
// the start.
func useSignedPolicy(t *testing.T, a *agentDir) *signedPolicy {
	t.Helper()
	keys, adminsPath := signedtest.Admins(t, a.dir, 2, "alice", "bob")
	sp := &signedPolicy{keys: keys, trust: filepath.Join(t.TempDir(), "DEVICE.json"), cfgPath: filepath.Join(a.dir, "agent.yaml"),
		yamlPath: filepath.Join(a.dir, "policy.yaml"), signedPath: filepath.Join(a.dir, "policy.signed.json")}
	if o, code := bundlesCLI(t, "tpm", "enroll", "--insecure-simulator", "--tpm", "simulator:"+filepath.Join(a.dir, "sim"),
		"--state", filepath.Join(a.dir, "data", "tpm"), "--site", "e2e-site", "--device", "dev-1", "--out", sp.trust,
		"--policy-admins", adminsPath); code != 0 {
		t.Fatalf("tpm enroll: exit %d\n%s", code, o)
	}
	cfg, err := os.ReadFile(sp.cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	cfg = []byte(strings.Replace(string(cfg), "policy: policy.yaml\n", "policy: policy.signed.json\npolicy_admins: admins.json\n", 1))
	if err := os.WriteFile(sp.cfgPath, cfg, 0o600); err != nil {
		t.Fatal(err)
	}
	return sp
}

// version writes policyText and its signed form by the first signers
// admins.
func (sp *signedPolicy) version(t *testing.T, policyText string, signers int) {
	t.Helper()
	if err := os.WriteFile(sp.yamlPath, []byte(policyText), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(sp.signedPath, signedtest.Sign(t, sp.yamlPath, sp.keys[:signers]...), 0o644); err != nil {
		t.Fatal(err)
	}
}
