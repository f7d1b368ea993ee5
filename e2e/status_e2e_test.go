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
)

// statusJSON reads the running agent's GET /v1/status as generic JSON, so
// the test checks the field names operators and scripts see.
func statusJSON(t *testing.T, a *agentDir) map[string]any {
	t.Helper()
	r, err := do(t, unixClient(a.socket), "GET", "http://agent/v1/status", tokAuditor, "", nil)
	if err != nil || r.status != http.StatusOK {
		t.Fatalf("GET /v1/status: %d %s %v", r.status, r.body, err)
	}
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// field is the value at a dotted path of m ("broker.connected"), nil when
// absent.
func field(m map[string]any, path string) any {
	var v any = m
	for k := range strings.SplitSeq(path, ".") {
		o, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = o[k]
	}
	return v
}

// waitField polls /v1/status until ok holds of it.
func waitField(t *testing.T, a *agentDir, p *agentProc, what string, ok func(map[string]any) bool) map[string]any {
	t.Helper()
	deadline := time.Now().Add(120 * time.Second)
	for {
		m := statusJSON(t, a)
		if ok(m) {
			return m
		}
		if time.Now().After(deadline) {
			raw, _ := json.Marshal(m)
			t.Fatalf("%s: not reached after 120s: %s\n%s", what, raw, tail(p.stderr.String()))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestStatusDeliveryE2E: a real agent sending to the archive daemon (its
// embedded broker) that refuses the device's bundles while the device is
// pending approval. /v1/status shows the broker connection (connected,
// since when), the archive's last refusal (bundle, checks, message, how
// many times) and the key in force (id, since, no PCR authorization
// needed); the agent logs the refusal once however often the retries are
// refused; `edgeseal doctor` shows the same. Once the device is approved,
// the last delivery (bundle, time, archive log index) is shown, also after
// a restart with the broker unreachable, where the connection reads not
// connected with its last error.
func TestStatusDeliveryE2E(t *testing.T) {
	needAgent(t)
	ar := startEmbeddedArchive(t)
	a := newAgentDir(t, agentOpts{sealEvery: 1000, sealInterval: "1h", maxBody: "64 KiB"})
	dev := enrollFile(t, a)
	if out, code := bundlesCLI(t, "archive", "enroll-file", dev, "--data-dir", ar.dataDir); code != 0 {
		t.Fatalf("enroll-file: exit %d\n%s", code, out)
	}
	cfg := filepath.Join(a.dir, "agent.yaml")
	base, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	withSync := func(broker string) {
		t.Helper()
		c := string(base) + fmt.Sprintf("sync:\n  broker: %s\n  archive_key: %s\n  retry_held: 500ms\n", broker, ar.keyFile+".pub")
		if err := os.WriteFile(cfg, []byte(c), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	withSync(ar.broker)
	start := time.Now().Add(-time.Second)

	p := airGapRounds(t, a, 1) // pending: the bundle is refused, and again at each retry
	deadline := time.Now().Add(120 * time.Second)
	for ar.stats(t).Refused < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("the pending device's bundle was not refused 3 times: %+v\n%s", ar.stats(t), ar.stderr)
		}
		time.Sleep(50 * time.Millisecond)
	}
	m := waitField(t, a, p, "refused 3 times", func(m map[string]any) bool {
		n, _ := field(m, "lastRefusal.count").(float64)
		return n >= 3
	})
	raw, _ := json.MarshalIndent(m, "", "  ")
	t.Logf("status while refused:\n%s", raw)
	if field(m, "broker.connected") != true || field(m, "broker.broker") != ar.broker {
		t.Errorf("broker link: %v", field(m, "broker"))
	}
	if s, _ := field(m, "broker.since").(string); !after(s, start) {
		t.Errorf("broker.since %q is not a time since the test began", s)
	}
	bundleID, _ := field(m, "lastRefusal.bundle").(string)
	msg, _ := field(m, "lastRefusal.message").(string)
	checks, _ := field(m, "lastRefusal.checks").([]any)
	if bundleID == "" || msg == "" || len(checks) == 0 || !strings.HasPrefix(fmt.Sprint(field(m, "lastRefusal.digest")), "sha256:") {
		t.Errorf("last refusal: %v", field(m, "lastRefusal"))
	}
	if field(m, "lastDelivery") != nil {
		t.Errorf("a delivery before the device was approved: %v", field(m, "lastDelivery"))
	}
	keyID, _ := field(m, "key.keyId").(string)
	if !strings.HasPrefix(keyID, "sha256:") || keyID != keyIDOf(t, dev) || field(m, "key.pcrAuthorizationNeeded") != false {
		t.Errorf("key: %v (enrolled %s)", field(m, "key"), keyIDOf(t, dev))
	}
	if s, _ := field(m, "key.since").(string); !after(s, start) {
		t.Errorf("key.since %q is not the time of its key.create record", s)
	}
	// Refused 3 times or more, logged once (no warning or error per
	// retry), naming the bundle, the checks and the archive's message.
	var refusals []string
	for l := range strings.SplitSeq(p.stderr.String(), "\n") {
		loud := strings.Contains(l, `"level":"ERROR"`) || strings.Contains(l, `"level":"WARN"`)
		low := strings.ToLower(l)
		if loud && (strings.Contains(low, "refused a bundle") || strings.Contains(low, "rejected")) {
			refusals = append(refusals, l)
		}
	}
	if len(refusals) != 1 || !strings.Contains(refusals[0], bundleID) || !strings.Contains(refusals[0], msg) || !strings.Contains(refusals[0], fmt.Sprint(checks[0])) {
		t.Errorf("the refusal is logged %d times (want once, naming bundle %s, %q and check %v):\n%s", len(refusals), bundleID, msg, checks[0], strings.Join(refusals, "\n"))
	}

	out, code := doctorCLI(t, cfg, []string{"EDGESEAL_TOKEN=" + tokAuditor})
	t.Logf("doctor while refused:\n%s", out)
	wantLines(t, "doctor while refused", out, "ok link:", "ok key:", "warn refusal:")
	if code != 0 || !strings.Contains(out, bundleID) || !strings.Contains(out, msg) || !strings.Contains(out, keyID) {
		t.Errorf("doctor while refused: exit %d, want the bundle %s, the archive's message and key %s", code, bundleID, keyID)
	}

	// Approved: the next retry is accepted.
	if out, code := bundlesCLI(t, "archive", "devices", "approve", "e2e-site/dev-1", "--key", keyID, "--no-activation", "--data-dir", ar.dataDir); code != 0 {
		t.Fatalf("approve: exit %d\n%s", code, out)
	}
	m = waitField(t, a, p, "delivered", func(m map[string]any) bool { return field(m, "lastDelivery") != nil })
	if field(m, "lastDelivery.bundle") != bundleID || field(m, "lastDelivery.logIndex") != float64(0) {
		t.Errorf("last delivery: %v, want bundle %s at log index 0", field(m, "lastDelivery"), bundleID)
	}
	delivered, _ := field(m, "lastDelivery.time").(string)
	if !after(delivered, start) {
		t.Errorf("lastDelivery.time %q", delivered)
	}
	out, code = doctorCLI(t, cfg, []string{"EDGESEAL_TOKEN=" + tokAuditor})
	t.Logf("doctor once delivered:\n%s", out)
	wantLines(t, "doctor once delivered", out, "ok link:", "ok delivery:", "ok refusal:")
	if code != 0 || !strings.Contains(out, "archive log index 0") {
		t.Errorf("doctor once delivered: exit %d", code)
	}
	p.stop()

	// Restarted with the broker unreachable: not connected, the last
	// error, and the last delivery read back from the journal.
	withSync("tcp://127.0.0.1:1")
	p = a.start(t, true)
	m = waitField(t, a, p, "broker error", func(m map[string]any) bool { return field(m, "broker.lastError") != nil })
	if field(m, "broker.connected") != false || field(m, "lastDelivery.bundle") != bundleID || field(m, "lastDelivery.time") != delivered {
		raw, _ := json.Marshal(m)
		t.Errorf("after a restart, broker down: %s", raw)
	}
	out, _ = doctorCLI(t, cfg, []string{"EDGESEAL_TOKEN=" + tokAuditor})
	wantLines(t, "doctor, broker down", out, "warn link:", "ok delivery:")
	if !strings.Contains(out, "last error") {
		t.Errorf("doctor does not show the agent's last broker error:\n%s", out)
	}
	p.stop()
	// The agent stopped: doctor reads the last delivery from the journal.
	out, _ = doctorCLI(t, cfg, nil)
	wantLines(t, "doctor, agent stopped", out, "ok delivery:")
	if !strings.Contains(out, "last bundle receipted: "+bundleID) || !strings.Contains(out, "archive log index 0") {
		t.Errorf("doctor with the agent stopped does not show the last delivery:\n%s", out)
	}
}

// after reports whether s is an RFC 3339 time not before t.
func after(s string, t time.Time) bool {
	v, err := time.Parse(time.RFC3339Nano, s)
	return err == nil && !v.Before(t)
}
