package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/edgeseal/edgeseal/agent"
)

// TestSignedPolicyEndToEnd: the agent starts on a policy signed 2 of 2,
// reloads a second version on SIGHUP and a third through POST
// /v1/policy/reload, refuses an unsigned file and one signed by one admin
// (it keeps the third, the alarm shows in /v1/status), seals; `edgeseal
// verify` accepts the bundles and `edgeseal policy history` prints the
// three versions with their signers and the changes between them, from
// the bundles, the agent's journal and the archive's object store.
func TestSignedPolicyEndToEnd(t *testing.T) {
	needAgent(t)
	a := newAgentDir(t, agentOpts{sealEvery: 1000, sealInterval: "1h", maxBody: "64 KiB"})
	sp := useSignedPolicy(t, a)
	trustFile, cfgPath, signedPath := sp.trust, sp.cfgPath, sp.signedPath
	version := func(policyText string, signers int) { t.Helper(); sp.version(t, policyText, signers) }
	v2Text := strings.Replace(e2ePolicy, "max_size: 4096", "max_size: 8192", 1)
	schema2, err := os.ReadFile(filepath.Join(a.dir, "schemas", "invoice-1.json"))
	if err != nil {
		t.Fatal(err)
	}
	schema2 = []byte(strings.Replace(string(schema2), `"title": "Invoice export, version 1"`, `"title": "Invoice export, version 2"`, 1))
	if err := os.WriteFile(filepath.Join(a.dir, "schemas", "invoice-2.json"), schema2, 0o644); err != nil {
		t.Fatal(err)
	}
	v3Text := strings.Replace(v2Text, "  invoice@1: schemas/invoice-1.json\n", "  invoice@1: schemas/invoice-1.json\n  invoice@2: schemas/invoice-2.json\n", 1) +
		`  - name: invoices-v2
    schema: invoice@2
    classifications: [internal]
    retention: finance-10y
    destinations: [archive]
    principals: [n8n-prod]
    max_size: 8192
`
	version(e2ePolicy, 2)

	p := a.start(t, true)
	sock := unixClient(a.socket)
	exportInv := func(i int, wf string) {
		t.Helper()
		body := fmt.Appendf(nil, `{"id":"inv-%d","workflow":%q,"app":"n8n","classification":"internal","destination":"archive","data":%s}`, i, wf, fmt.Sprintf(e2eInvoice, i))
		r, err := do(t, sock, "POST", "http://agent/v1/exports", tokN8N, "application/json", body)
		if err != nil || r.status != http.StatusCreated {
			t.Fatalf("export %d: %d %s %v", i, r.status, r.body, err)
		}
	}
	st := waitStatus(t, a, p, "signed policy in force", func(st *agent.Status) bool { return st.PolicySigned != nil })
	v1 := st.Policy
	if strings.Join(st.PolicySigned.Signers, ",") != "alice,bob" {
		t.Fatalf("signers %v", st.PolicySigned.Signers)
	}
	exportInv(1, "invoices-daily")

	// Version 2 on SIGHUP.
	version(v2Text, 2)
	if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	st = waitStatus(t, a, p, "version 2 in force", func(st *agent.Status) bool { return st.Policy != v1 })
	v2 := st.Policy
	exportInv(2, "invoices-daily")

	// Version 3 through the API: operator role only.
	version(v3Text, 2)
	if r, err := do(t, sock, "POST", "http://agent/v1/policy/reload", tokN8N, "", nil); err != nil || r.status != http.StatusForbidden {
		t.Fatalf("reload by an exporter: %d %s %v", r.status, r.body, err)
	}
	r, err := do(t, sock, "POST", "http://agent/v1/policy/reload", tokOperator, "", nil)
	var rl agent.PolicyReload
	if err != nil || r.status != http.StatusOK || json.Unmarshal(r.body, &rl) != nil || rl.Previous != v2 || rl.Policy == v2 {
		t.Fatalf("reload: %d %s %v", r.status, r.body, err)
	}
	v3 := rl.Policy
	exportInv(3, "invoices-v2")

	// Refused: an unsigned file (API), one admin of two (SIGHUP).
	if err := os.WriteFile(signedPath, []byte(v3Text), 0o644); err != nil {
		t.Fatal(err)
	}
	r, err = do(t, sock, "POST", "http://agent/v1/policy/reload", tokOperator, "", nil)
	if err != nil || r.status != http.StatusUnprocessableEntity || !strings.Contains(string(r.body), "policy_refused") {
		t.Fatalf("unsigned reload: %d %s %v", r.status, r.body, err)
	}
	version(strings.Replace(v3Text, "max_size: 65536", "max_size: 99999", 1), 1)
	if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	st = waitStatus(t, a, p, "below-threshold reload refused", func(st *agent.Status) bool {
		return st.PolicySigned != nil && st.PolicySigned.RefusedTotal == 2
	})
	if st.Policy != v3 || st.PolicySigned.Refused == nil || !strings.Contains(st.PolicySigned.Refused.Reason, "signed by 1 of the 2 admins") {
		t.Fatalf("after refusals: policy %s (want %s), alarm %+v", st.Policy, v3, st.PolicySigned.Refused)
	}
	exportInv(4, "invoices-v2")
	if r, err := do(t, sock, "POST", "http://agent/v1/seal", tokOperator, "", nil); err != nil || r.status/100 != 2 {
		t.Fatalf("seal: %d %s %v", r.status, r.body, err)
	}
	p.stop()
	if !strings.Contains(p.stderr.String(), "policy reload refused") {
		t.Fatalf("no alarm in the log:\n%s", tail(p.stderr.String()))
	}

	media := t.TempDir()
	if out, code := bundlesCLI(t, "bundles", "export", "--config", cfgPath, "--to", media); code != 0 {
		t.Fatalf("bundles export: exit %d\n%s", code, out)
	}
	paths, _ := filepath.Glob(filepath.Join(media, "*.bundle.tar"))
	if len(paths) == 0 {
		t.Fatal("no bundles")
	}
	if out, code := bundlesCLI(t, append([]string{"verify", "--trust", trustFile}, paths...)...); code != 0 {
		t.Fatalf("verify: exit %d\n%s", code, out)
	}
	// A trust file pinning another admin set refuses the same bundles.
	tr, err := os.ReadFile(trustFile)
	if err != nil {
		t.Fatal(err)
	}
	var trust map[string]any
	if err := json.Unmarshal(tr, &trust); err != nil || trust["policyAdmins"] == nil {
		t.Fatalf("DEVICE.json pins no admin set: %v\n%s", err, tr)
	}
	trust["policyAdmins"] = "sha256:" + strings.Repeat("0", 64)
	tr, _ = json.Marshal(trust)
	otherTrust := filepath.Join(t.TempDir(), "OTHER.json")
	if err := os.WriteFile(otherTrust, tr, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, code := bundlesCLI(t, append([]string{"verify", "--trust", otherTrust}, paths...)...); code != 1 || !strings.Contains(out, "policy.signed") {
		t.Fatalf("verify against another admin set: exit %d\n%s", code, out)
	}
	out, code := bundlesCLI(t, append([]string{"policy", "history"}, paths...)...)
	if code != 0 {
		t.Fatalf("policy history: exit %d\n%s", code, out)
	}
	for _, want := range []string{
		"version 1: " + v1, "version 2: " + v2, "version 3: " + v3, "signed by alice, bob",
		"workflow invoices-daily changed [max_size]", "workflow invoices-v2 added", "schema invoice@2 added",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("policy history lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "version 4") {
		t.Errorf("a refused policy is in the history:\n%s", out)
	}
	// The same history from the journal of the stopped agent.
	if jout, code := bundlesCLI(t, "policy", "history", "--config", cfgPath); code != 0 || jout != out {
		t.Fatalf("history from the journal: exit %d\n%s\nfrom bundles:\n%s", code, jout, out)
	}
	// The same history from the archive that stored the bundles, read
	// from its object store while its daemon runs.
	arCfg := writeArchiveConfig(t, t.TempDir(), "", "")
	enrollDevices(t, arCfg, trustFile)
	if o, code := bundlesCLI(t, "archive", "import", media, "--config", arCfg); code != 0 {
		t.Fatalf("archive import: exit %d\n%s", code, o)
	}
	ar := startArchiveProc(t, arCfg)
	aout, code := bundlesCLI(t, "policy", "history", "--archive-config", arCfg, "--device", "e2e-site/dev-1")
	if code != 0 || aout != out || strings.Count(aout, "version ") < 3 {
		t.Fatalf("history from the archive: exit %d\n%s\nfrom bundles:\n%s\n%s", code, aout, out, ar.logs())
	}
	if o, code := bundlesCLI(t, "policy", "history", "--archive-config", arCfg, "--device", "e2e-site/other"); code != 0 || strings.Contains(o, "version 1") {
		t.Fatalf("history of a device the archive has no bundle of: exit %d\n%s", code, o)
	}
	ar.stop(t)
}
