package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/edgeseal/edgeseal/archive"
	"github.com/edgeseal/edgeseal/bundle/bundletest"
	"github.com/edgeseal/edgeseal/bundle/trustfile"
	"github.com/edgeseal/edgeseal/tpm/swtpmtest"
)

// listDevices runs `archive devices list --json` with args.
func listDevices(t *testing.T, args ...string) []archive.DeviceInfo {
	t.Helper()
	out, code := bundlesCLI(t, append([]string{"archive", "devices", "list", "--json"}, args...)...)
	var devs []archive.DeviceInfo
	if code != 0 || json.Unmarshal([]byte(out), &devs) != nil {
		t.Fatalf("devices list: exit %d\n%s", code, out)
	}
	return devs
}

// TestApproveNeedsKey: `devices approve` without --key is a usage error
// (exit 2) naming --key and changes nothing; two requests of one device
// both wait (list shows both), approve picks one by --key, refuses it
// while its credential is not activated unless --no-activation, and the
// other stays pending.
func TestApproveNeedsKey(t *testing.T) {
	needAgent(t)
	data := t.TempDir()
	var keys []string
	for range 2 {
		c, err := bundletest.NewChain(t.Context(), nil, 0, bundletest.Options{})
		if err != nil {
			t.Fatal(err)
		}
		dev := writeTrust(t, c)
		out, code := bundlesCLI(t, "archive", "enroll-file", dev, "--data-dir", data)
		if code != 0 || !strings.Contains(out, "wrote the credential challenge") {
			t.Fatalf("enroll-file: exit %d\n%s", code, out)
		}
		if _, err := os.Stat(strings.TrimSuffix(dev, ".json") + ".challenge.json"); err != nil {
			t.Fatalf("no challenge file: %v", err)
		}
		keys = append(keys, c.Trust.KeyID)
	}
	out, code := bundlesCLI(t, "archive", "devices", "approve", "site1/dev1", "--no-activation", "--data-dir", data)
	if code != 2 || !strings.Contains(out, "--key is required") {
		t.Fatalf("approve without --key: exit %d\n%s", code, out)
	}
	devs := listDevices(t, "--data-dir", data)
	if len(devs) != 1 || devs[0].Status != archive.StatusPending || strings.Join(devs[0].PendingKeys(), ",") != strings.Join(keys, ",") {
		t.Fatalf("after approve without --key: %+v", devs)
	}
	out, code = bundlesCLI(t, "archive", "devices", "list", "--data-dir", data)
	if code != 0 || !strings.Contains(out, keys[0]) || !strings.Contains(out, keys[1]) || !strings.Contains(out, "challenged") {
		t.Fatalf("devices list does not show both pending keys:\n%s", out)
	}
	out, code = bundlesCLI(t, "archive", "devices", "approve", "site1/dev1", "--key", keys[0], "--data-dir", data)
	if code != 1 || !strings.Contains(out, "was not activated") || !strings.Contains(out, "--no-activation") {
		t.Fatalf("approve of a request not activated: exit %d\n%s", code, out)
	}
	out, code = bundlesCLI(t, "archive", "devices", "approve", "site1/dev1", "--key", keys[0], "--no-activation", "--data-dir", data)
	if code != 0 || !strings.Contains(out, "approved (key "+keys[0]+")") || !strings.Contains(out, "WITHOUT credential activation") {
		t.Fatalf("approve --no-activation: exit %d\n%s", code, out)
	}
	devs = listDevices(t, "--data-dir", data)
	if devs[0].KeyID != keys[0] || len(devs[0].Requests) != 1 || devs[0].Requests[0].KeyID() != keys[1] {
		t.Fatalf("after approving the first key the second is not pending: %+v", devs[0])
	}
	// A new key for the approved device is an alarm naming the rekey.
	c, err := bundletest.NewChain(t.Context(), nil, 0, bundletest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	out, code = bundlesCLI(t, "archive", "enroll-file", writeTrust(t, c), "--data-dir", data)
	if code != 0 || !strings.Contains(out, "ALERT "+archive.KindEnrollmentApproved) || !strings.Contains(out, "devices rekey site1/dev1 --key "+c.Trust.KeyID) {
		t.Fatalf("enroll-file of a new key for an approved device: exit %d\n%s", code, out)
	}
}

// agentEnrollRequest runs tpm enroll and `agent enroll --no-mqtt --out`
// for the agent and returns the request file and its key id.
func agentEnrollRequest(t *testing.T, a *agentDir, tpmSpec string) (string, string) {
	t.Helper()
	cfg := filepath.Join(a.dir, "agent.yaml")
	if o, code := bundlesCLI(t, "tpm", "enroll", "--insecure-simulator", "--tpm", tpmSpec, "--state", filepath.Join(a.dir, "data", "tpm"),
		"--site", "e2e-site", "--device", "dev-1", "--out", filepath.Join(t.TempDir(), "DEVICE.json"),
		"--no-recovery", "--pcr-policy=pcr"); code != 0 {
		t.Fatalf("tpm enroll: exit %d\n%s", code, o)
	}
	req := filepath.Join(t.TempDir(), "request.json")
	if out, code := bundlesCLI(t, "agent", "enroll", "--config", cfg, "--no-mqtt", "--out", req); code != 0 {
		t.Fatalf("agent enroll --out: exit %d\n%s", code, out)
	}
	return req, readEnrollRequest(t, req).ParsedTrust().KeyID
}

// TestEnrollByFilesActivation: the air-gapped enrollment with the real
// binary and simulated TPMs: enroll-file writes a challenge, the device
// answers it (agent enroll --answer), enroll-file --response activates
// the request, and approve then needs no --no-activation. A request
// whose AK is from another TPM than its EK fails activation on both
// TPMs, and a forged answer is refused.
func TestEnrollByFilesActivation(t *testing.T) {
	needAgent(t)
	a := newAgentDir(t, agentOpts{sealEvery: 1000, sealInterval: "1h", maxBody: "64 KiB"})
	b := newAgentDir(t, agentOpts{sealEvery: 1000, sealInterval: "1h", maxBody: "64 KiB"})
	reqA, keyA := agentEnrollRequest(t, a, "simulator:"+filepath.Join(a.dir, "sim"))
	reqB, keyB := agentEnrollRequest(t, b, "simulator:"+filepath.Join(b.dir, "sim"))

	data := t.TempDir()
	if out, code := bundlesCLI(t, "archive", "enroll-file", reqA, "--data-dir", data); code != 0 {
		t.Fatalf("enroll-file: exit %d\n%s", code, out)
	}
	challenge := strings.TrimSuffix(reqA, ".json") + ".challenge.json"
	if out, code := bundlesCLI(t, "archive", "devices", "approve", "e2e-site/dev-1", "--key", keyA, "--data-dir", data); code != 1 || !strings.Contains(out, "was not activated") {
		t.Fatalf("approve before activation: exit %d\n%s", code, out)
	}
	// The other device cannot answer it (another key).
	if out, code := bundlesCLI(t, "agent", "enroll", "--config", filepath.Join(b.dir, "agent.yaml"), "--answer", challenge); code == 0 || !strings.Contains(out, "the challenge is for e2e-site/dev-1 key "+keyA) {
		t.Fatalf("another device answered the challenge: exit %d\n%s", code, out)
	}
	out, code := bundlesCLI(t, "agent", "enroll", "--config", filepath.Join(a.dir, "agent.yaml"), "--answer", challenge)
	response := strings.TrimSuffix(challenge, ".json") + ".response.json"
	if code != 0 || !strings.Contains(out, "credential activated; wrote "+response) {
		t.Fatalf("agent enroll --answer: exit %d\n%s", code, out)
	}
	if out, code := bundlesCLI(t, "archive", "enroll-file", "--response", response, "--data-dir", data); code != 0 || !strings.Contains(out, "credential of key "+keyA+" activated") {
		t.Fatalf("enroll-file --response: exit %d\n%s", code, out)
	}
	if devs := listDevices(t, "--data-dir", data); len(devs) != 1 || !devs[0].PendingKey(keyA).Activated() {
		t.Fatalf("request not activated: %+v", devs)
	}
	if out, code := bundlesCLI(t, "archive", "devices", "approve", "e2e-site/dev-1", "--key", keyA, "--data-dir", data); code != 0 || strings.Contains(out, "WITHOUT") {
		t.Fatalf("approve after activation: exit %d\n%s", code, out)
	}

	// b's request with a's EK: its AK is not in the TPM of that EK.
	ra, rb := readEnrollRequest(t, reqA), readEnrollRequest(t, reqB)
	mixed := *rb.ParsedTrust()
	mixed.EKPublic, mixed.EKCert = ra.ParsedTrust().EKPublic, nil
	tb, err := mixed.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := trustfile.ParseTrust(tb); err != nil {
		t.Fatal(err)
	}
	rb.Trust = tb
	mixedFile := marshalTemp(t, "mixed.json", rb.Marshal)
	data2 := t.TempDir()
	if out, code := bundlesCLI(t, "archive", "enroll-file", mixedFile, "--data-dir", data2); code != 0 {
		t.Fatalf("enroll-file of the mixed request: exit %d\n%s", code, out)
	}
	mixedChallenge := strings.TrimSuffix(mixedFile, ".json") + ".challenge.json"
	out, code = bundlesCLI(t, "agent", "enroll", "--config", filepath.Join(b.dir, "agent.yaml"), "--answer", mixedChallenge)
	if code == 0 || !strings.Contains(out, "not made for this TPM's EK and AK") {
		t.Fatalf("the AK's TPM activated a credential for another TPM's EK: exit %d\n%s", code, out)
	}
	if _, err := os.Stat(strings.TrimSuffix(mixedChallenge, ".json") + ".response.json"); err == nil {
		t.Fatal("a response was written after a failed activation")
	}
	// A forged answer (not the credential) is refused.
	forged, err := (&archive.ActivationResponse{Version: 1, Type: archive.TypeActivation, Device: "e2e-site/dev-1", KeyID: keyB, Credential: make([]byte, 32)}).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	forgedFile := filepath.Join(t.TempDir(), "forged.json")
	if err := os.WriteFile(forgedFile, forged, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, code := bundlesCLI(t, "archive", "enroll-file", "--response", forgedFile, "--data-dir", data2); code != 1 || !strings.Contains(out, "credential activation FAILED for key "+keyB) {
		t.Fatalf("forged answer: exit %d\n%s", code, out)
	}
	if out, code := bundlesCLI(t, "archive", "devices", "approve", "e2e-site/dev-1", "--key", keyB, "--data-dir", data2); code != 1 || !strings.Contains(out, "was not activated") {
		t.Fatalf("approve of the mixed request: exit %d\n%s", code, out)
	}
}

// TestEnrollEKCertCA: with enroll.ek_ca set, a request whose EK
// certificate chains to the bundle is enrolled (and its credential
// activated by the swtpm device, then approved); one without an EK
// certificate, or whose certificate chains to another CA, is refused
// naming why. swtpm's EK gets its certificate from swtpm_localca.
func TestEnrollEKCertCA(t *testing.T) {
	needAgent(t)
	sw, caPEM := swtpmtest.StartWithEKCert(t)
	_, otherCA := swtpmtest.StartWithEKCert(t)
	a := newAgentDir(t, agentOpts{sealEvery: 1000, sealInterval: "1h", maxBody: "64 KiB", notEnrolled: true})
	cfgFile := filepath.Join(a.dir, "agent.yaml")
	cfg, err := os.ReadFile(cfgFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfgFile, []byte(strings.Replace(string(cfg), "tpm: simulator:sim", "tpm: "+sw.Spec, 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	req, key := agentEnrollRequest(t, a, sw.Spec)
	raw, err := os.ReadFile(req)
	if err != nil {
		t.Fatal(err)
	}
	r, err := archive.ParseEnrollRequest(raw)
	if err != nil || len(r.ParsedTrust().EKCert) == 0 {
		t.Fatalf("the request carries no EK certificate: %v", err)
	}
	noCert := *r.ParsedTrust()
	noCert.EKCert = nil
	if r.Trust, err = noCert.Marshal(); err != nil {
		t.Fatal(err)
	}
	noCertFile := marshalTemp(t, "nocert.json", r.Marshal)
	archiveCfg := func(ca []byte) string {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "ek-ca.pem"), ca, 0o644); err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, "archive.yaml")
		if err := os.WriteFile(p, []byte("data_dir: data\nenroll:\n  ek_ca: ek-ca.pem\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good, other := archiveCfg(caPEM), archiveCfg(otherCA)
	if out, code := bundlesCLI(t, "archive", "enroll-file", noCertFile, "--config", good); code != 1 || !strings.Contains(out, "has no EK certificate") {
		t.Fatalf("request without an EK certificate: exit %d\n%s", code, out)
	}
	if out, code := bundlesCLI(t, "archive", "enroll-file", req, "--config", other); code != 1 || !strings.Contains(out, "does not chain to the EK CA bundle") {
		t.Fatalf("EK certificate of another CA: exit %d\n%s", code, out)
	}
	if out, code := bundlesCLI(t, "archive", "enroll-file", req, "--config", good); code != 0 || !strings.Contains(out, "enrolled e2e-site/dev-1: key "+key) {
		t.Fatalf("EK certificate of the configured CA: exit %d\n%s", code, out)
	}
	// The swtpm device activates its credential; then approve needs no
	// --no-activation.
	challenge := strings.TrimSuffix(req, ".json") + ".challenge.json"
	if out, code := bundlesCLI(t, "agent", "enroll", "--config", cfgFile, "--answer", challenge); code != 0 {
		t.Fatalf("agent enroll --answer on swtpm: exit %d\n%s", code, out)
	}
	if out, code := bundlesCLI(t, "archive", "enroll-file", "--response", strings.TrimSuffix(challenge, ".json")+".response.json", "--config", good); code != 0 {
		t.Fatalf("enroll-file --response: exit %d\n%s", code, out)
	}
	if out, code := bundlesCLI(t, "archive", "devices", "approve", "e2e-site/dev-1", "--key", key, "--config", good); code != 0 || strings.Contains(out, "WITHOUT") {
		t.Fatalf("approve after activation on swtpm: exit %d\n%s", code, out)
	}
	// Without enroll.ek_ca, no certificate is required.
	if out, code := bundlesCLI(t, "archive", "enroll-file", noCertFile, "--data-dir", t.TempDir()); code != 0 {
		t.Fatalf("request without an EK certificate and no ek_ca: exit %d\n%s", code, out)
	}
}
