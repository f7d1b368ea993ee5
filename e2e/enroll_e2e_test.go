package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edgeseal/edgeseal/agent"
	"github.com/edgeseal/edgeseal/agent/api"
	"github.com/edgeseal/edgeseal/archive"
)

// exportState reads GET /v1/exports/{id}.
func exportState(t *testing.T, c *api.Client, id string) agent.ExportInfo {
	t.Helper()
	r, err := do(t, c, "GET", "http://agent/v1/exports/"+id, tokAuditor, "", nil)
	if err != nil || r.status != http.StatusOK {
		t.Fatalf("GET export %s: %d %s %v", id, r.status, r.body, err)
	}
	var info agent.ExportInfo
	if err := json.Unmarshal(r.body, &info); err != nil {
		t.Fatal(err)
	}
	return info
}

// TestEnrollOverMQTT: `edgeseal agent enroll` sends the device's
// enrollment over MQTT to the archive daemon (embedded broker) and gets
// its signed "pending approval"; `archive devices list` shows it pending;
// the agent's bundles are refused until `archive devices approve`, then
// accepted. The export goes journaled -> sealed -> sent -> archived in
// GET /v1/exports/{id}, and archived holds after a restart.
func TestEnrollOverMQTT(t *testing.T) {
	needAgent(t)
	ar := startEmbeddedArchive(t)
	a := newAgentDir(t, agentOpts{sealEvery: 1000, sealInterval: "1h", maxBody: "64 KiB"})
	cfg := filepath.Join(a.dir, "agent.yaml")
	appendFile(t, cfg, fmt.Sprintf("sync:\n  broker: %s\n  archive_key: %s\n", ar.broker, ar.keyFile+".pub"))

	reqFile := filepath.Join(t.TempDir(), "enroll.json")
	out, code := bundlesCLI(t, "agent", "enroll", "--config", cfg, "--out", reqFile, "--note", "e2e", "--timeout", "30s")
	if code != 0 || !strings.Contains(out, "pending approval") || !strings.Contains(out, "edgeseal archive devices approve e2e-site/dev-1 --key sha256:") {
		t.Fatalf("agent enroll: exit %d\n%s\n%s", code, out, ar.stderr)
	}
	t.Logf("agent enroll:\n%s", out)
	enrollOut := out
	raw, err := os.ReadFile(reqFile)
	if err != nil {
		t.Fatal(err)
	}
	req, err := archive.ParseEnrollRequest(raw)
	if err != nil || req.Note != "e2e" || !req.PCRsMatch() {
		t.Fatalf("the request file: %v", err)
	}
	keyID := req.ParsedTrust().KeyID
	out, code = bundlesCLI(t, "archive", "devices", "list", "--json", "--data-dir", ar.dataDir)
	var devs []archive.DeviceInfo
	if code != 0 || json.Unmarshal([]byte(out), &devs) != nil || len(devs) != 1 || devs[0].Name != "e2e-site/dev-1" ||
		devs[0].Status != archive.StatusPending || devs[0].Pending == nil || devs[0].KeyID != "" {
		t.Fatalf("devices list: exit %d\n%s", code, out)
	}
	if pending, err := json.Marshal(devs[0].Pending); err != nil || !strings.Contains(string(pending), `"note":"e2e"`) {
		t.Fatalf("pending request %s: %v", pending, err)
	}
	// agent enroll answered the archive's credential challenge with the
	// TPM: the request is activated.
	if len(devs[0].Requests) != 1 || !devs[0].Requests[0].Activated() || !strings.Contains(enrollOut, "credential of key "+keyID+" activated") {
		t.Fatalf("the request's credential is not activated: %+v", devs[0].Requests)
	}
	if logs := ar.logs(); !strings.Contains(logs, "ALERT "+archive.KindEnrollment) {
		t.Fatalf("no enrollment alert:\n%s", logs)
	}

	// Pending: the agent's bundle goes out (PUBACKed: sent) and is refused.
	p := airGapRounds(t, a, 1)
	c := unixClient(a.socket)
	waitExport := func(id, want string, p *agentProc) agent.ExportInfo {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		for {
			info := exportState(t, c, id)
			if info.Status == want {
				return info
			}
			if time.Now().After(deadline) {
				t.Fatalf("export %s is %s, not %s, after 60s\n%s\n%s", id, info.Status, want, p.stderr, ar.stderr)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	sent := waitExport("inv-0-0", agent.StatusSent, p)
	deadline := time.Now().Add(30 * time.Second)
	for ar.stats(t).Refused == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("the pending device's bundle was not refused\n%s", ar.stderr)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if ar.stats(t).LogSize != 0 || ar.stats(t).Accepted != 0 {
		t.Fatalf("a bundle of a pending device was accepted: %+v", ar.stats(t))
	}
	if info := exportState(t, c, "inv-0-0"); info.Status != agent.StatusSent || info.Delivery != nil {
		t.Fatalf("refused bundle: %+v", info)
	}
	for !strings.Contains(p.stderr.String(), "the archive REFUSED a bundle") {
		if time.Now().After(deadline) {
			t.Fatalf("the agent did not log the refusal:\n%s", p.stderr)
		}
		time.Sleep(50 * time.Millisecond)
	}

	// Approved: after a restart the agent sends the bundle again and it
	// is accepted.
	if out, code := bundlesCLI(t, "archive", "devices", "approve", "e2e-site/dev-1", "--key", keyID, "--data-dir", ar.dataDir); code != 0 {
		t.Fatalf("approve: exit %d\n%s", code, out)
	}
	p.stop()
	p = a.start(t, true)
	info := waitExport("inv-0-0", agent.StatusArchived, p)
	if info.Bundle != sent.Bundle || info.Delivery == nil || info.Delivery.Outbox != sent.Bundle || info.Delivery.LogIndex != 0 {
		t.Fatalf("archived: %+v (sent as %s)", info, sent.Bundle)
	}
	if st := ar.stats(t); st.Accepted < 1 || st.Refused != 1 {
		t.Fatalf("archive: %+v", st)
	}
	p.stop()
	p = a.start(t, true)
	if info := exportState(t, c, "inv-0-1"); info.Status != agent.StatusArchived || info.Bundle != sent.Bundle {
		t.Fatalf("after a restart: %+v", info)
	}
	r, err := do(t, c, "GET", "http://agent/v1/status", tokAuditor, "", nil)
	var st agent.Status
	if err != nil || json.Unmarshal(r.body, &st) != nil || st.OutboxQuota != 1<<30 || st.OutboxOverQuota {
		t.Fatalf("status: %s %v", r.body, err)
	}
	p.stop()
}
