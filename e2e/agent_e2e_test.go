package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/edgeseal/edgeseal/agent"
	"github.com/edgeseal/edgeseal/agent/api"
	"github.com/edgeseal/edgeseal/bundle/custody"
	"github.com/edgeseal/edgeseal/bundle/merkle"
	"github.com/edgeseal/edgeseal/bundle/wire"
)

// rejection is one refused call and what its export.rejected record must say.
type rejection struct {
	name   string
	status int
	code   string
	reason string // in the record's reason
	actor  string // the record's actor id
	seq    uint64
}

// A real agent process over its real unix socket and TLS listener: good
// exports in both forms, every kind of refusal answered right and
// journaled with its reason, a mixed batch, a seal, proofs that verify
// against the checkpoint, accepted records unchanged, the export client,
// and a clean SIGTERM.
func TestAgentEndToEnd(t *testing.T) {
	needAgent(t)
	a := newAgentDir(t, agentOpts{sealEvery: 1000, sealInterval: "1h", maxBody: "64 KiB"})
	p := a.start(t, true)
	if p.tcp == "" {
		t.Fatalf("ready line names no tcp address:\n%s", p.stderr)
	}
	sock := unixClient(a.socket)
	tlsc := tlsClient(t, a.cacert, p.tcp)
	su, tu := "http://agent", "https://"+p.tcp

	post := func(c *api.Client, base, token, ctype string, body []byte, hdr ...string) httpReply {
		t.Helper()
		r, err := do(t, c, "POST", base+"/v1/exports", token, ctype, body, hdr...)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	envelope := func(id, wf, class string, data string) []byte {
		return fmt.Appendf(nil, `{"id":%q,"workflow":%q,"app":"n8n","purpose":"month end","classification":%q,"destination":"archive","data":%s}`, id, wf, class, data)
	}

	// Good exports: JSON envelope over the socket, raw CSV over TLS, a
	// repeat (200, same receipt, not journaled again).
	accepted := map[string]agent.ExportReceipt{}
	accepted["inv-1"] = receiptOf(t, post(sock, su, tokN8N, "application/json", envelope("inv-1", "invoices-daily", "internal", fmt.Sprintf(e2eInvoice, 1))), 201)
	accepted["rep-1"] = receiptOf(t, post(tlsc, tu, tokAppsmith, "text/csv", []byte("month,total\n2024-05,20\n"),
		api.HeaderID, "rep-1", api.HeaderWorkflow, "monthly-report", api.HeaderApp, "appsmith",
		api.HeaderClassification, "internal", api.HeaderDestination, "archive"), 201)
	again := receiptOf(t, post(sock, su, tokN8N, "application/json", envelope("inv-1", "invoices-daily", "internal", fmt.Sprintf(e2eInvoice, 1))), 200)
	if again.Seq != accepted["inv-1"].Seq || again.Leaf != accepted["inv-1"].Leaf || !again.Duplicate {
		t.Fatalf("repeat answered %+v, original %+v", again, accepted["inv-1"])
	}

	// The export client, over the socket and over TLS.
	csv := filepath.Join(t.TempDir(), "report.csv")
	if err := os.WriteFile(csv, []byte("a,b\n1,2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cli := func(args ...string) (string, int) {
		cmd := exec.Command(agentBin, append([]string{"export"}, args...)...)
		cmd.Env = append(os.Environ(), "EDGESEAL_TOKEN="+tokAppsmith)
		out, err := cmd.Output()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return string(out), code
	}
	flags := []string{"--workflow", "monthly-report", "--app", "appsmith", "--classification", "internal", "--destination", "archive"}
	out, code := cli(append(flags, "--socket", a.socket, "--id", "cli-1", csv)...)
	var rc agent.ExportReceipt
	if code != 0 || json.Unmarshal([]byte(out), &rc) != nil || rc.ExportID != "cli-1" {
		t.Fatalf("export client: exit %d: %s", code, out)
	}
	accepted["cli-1"] = rc
	out, code = cli(append(flags, "--url", tu, "--cacert", a.cacert, "--id", "cli-1", csv)...)
	if code != 0 || !strings.Contains(out, `"duplicate":true`) {
		t.Fatalf("export client repeat over TLS: exit %d: %s", code, out)
	}
	out, code = cli(append(flags[:len(flags)-2], "--destination", "elsewhere", "--socket", a.socket, csv)...)
	if code != 1 || !strings.Contains(out, "destination_not_allowed") {
		t.Fatalf("export client refused: exit %d: %s", code, out)
	}
	if _, code = cli("--socket", a.socket, csv); code != 2 {
		t.Fatalf("export client without --workflow: exit %d, want 2", code)
	}

	// What the accepted records are now, to compare after the refusals.
	leafs := map[string]string{}
	for id := range accepted {
		leafs[id] = getExport(t, sock, su, id).Leaf
	}

	// Every refusal, answered right and journaled.
	big := []byte(fmt.Sprintf(`{"workflow":"invoices-daily","app":"n8n","classification":"internal","destination":"archive","data":"%s"}`, strings.Repeat("x", 70<<10)))
	tooBig := []byte(fmt.Sprintf(`{"workflow":"invoices-daily","app":"n8n","classification":"internal","destination":"archive","data":{"pad":"%s"}}`, strings.Repeat("x", 5000)))
	var rejs []rejection
	for _, c := range []struct {
		rejection
		client *api.Client
		base   string
		token  string
		ctype  string
		body   []byte
		hdr    []string
	}{
		{rejection{name: "no token", status: 401, code: "unauthorized", reason: "missing bearer token", actor: "unauthenticated"}, sock, su, "", "application/json", envelope("x1", "invoices-daily", "internal", fmt.Sprintf(e2eInvoice, 2)), nil},
		{rejection{name: "bad token", status: 401, code: "unauthorized", reason: "invalid bearer token", actor: "unauthenticated"}, tlsc, tu, "wrong", "application/json", envelope("x2", "invoices-daily", "internal", fmt.Sprintf(e2eInvoice, 2)), nil},
		{rejection{name: "auditor", status: 403, code: "forbidden", reason: "exporter role", actor: "audit-team"}, sock, su, tokAuditor, "application/json", nil, []string{api.HeaderWorkflow, "invoices-daily", api.HeaderApp, "x"}},
		{rejection{name: "unknown workflow", status: 422, code: "unknown_workflow", reason: "unknown_workflow", actor: "n8n-prod"}, sock, su, tokN8N, "application/json", envelope("x3", "payroll", "internal", "{}"), nil},
		{rejection{name: "schema", status: 422, code: "schema_violation", reason: "schema_violation", actor: "n8n-prod"}, tlsc, tu, tokN8N, "application/json", envelope("x4", "invoices-daily", "internal", `{"invoice_no":"bad"}`), nil},
		{rejection{name: "classification", status: 422, code: "classification_not_allowed", reason: "classification_not_allowed", actor: "n8n-prod"}, sock, su, tokN8N, "application/json", envelope("x5", "invoices-daily", "secret", fmt.Sprintf(e2eInvoice, 3)), nil},
		{rejection{name: "policy size", status: 422, code: "too_large", reason: "too_large", actor: "n8n-prod"}, sock, su, tokN8N, "application/json", tooBig, nil},
		{rejection{name: "over max_body", status: 413, code: "body_too_large", reason: "body_too_large", actor: "n8n-prod"}, sock, su, tokN8N, "application/json", big, nil},
		{rejection{name: "malformed", status: 400, code: "malformed_json", reason: "malformed_json", actor: "n8n-prod"}, sock, su, tokN8N, "application/json", []byte(`{"workflow":"invoices-daily",`), nil},
		{rejection{name: "content type", status: 415, code: "unsupported_media_type", reason: "unsupported_media_type", actor: "n8n-prod"}, tlsc, tu, tokN8N, "text/plain", []byte("hello"), nil},
		{rejection{name: "raw type not allowed", status: 422, code: "media_type_not_allowed", reason: "media_type_not_allowed", actor: "appsmith"}, sock, su, tokAppsmith, "image/png", []byte("png"), []string{api.HeaderWorkflow, "monthly-report", api.HeaderApp, "a", api.HeaderClassification, "internal", api.HeaderDestination, "archive"}},
	} {
		r := post(c.client, c.base, c.token, c.ctype, c.body, c.hdr...)
		var eb api.ErrorBody
		if err := json.Unmarshal(r.body, &eb); err != nil || r.status != c.status || eb.Error.Code != c.code {
			t.Fatalf("%s: %d %s, want %d %s", c.name, r.status, r.body, c.status, c.code)
		}
		if c.status == 401 && !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Bearer") {
			t.Fatalf("%s: no WWW-Authenticate: Bearer", c.name)
		}
		if eb.Error.Seq == nil {
			t.Fatalf("%s: refusal not journaled: %s", c.name, r.body)
		}
		c.rejection.seq = *eb.Error.Seq
		rejs = append(rejs, c.rejection)
	}

	// A batch of mixed lines: one commit, answered per line.
	batch := strings.Join([]string{
		string(envelope("b-1", "invoices-daily", "internal", fmt.Sprintf(e2eInvoice, 10))),
		string(envelope("b-2", "invoices-daily", "secret", fmt.Sprintf(e2eInvoice, 11))),
		"",
		`{"workflow":`,
		string(envelope("inv-1", "invoices-daily", "internal", fmt.Sprintf(e2eInvoice, 1))),
		string(envelope("b-3", "invoices-daily", "internal", fmt.Sprintf(e2eInvoice, 12))),
	}, "\n")
	r, err := do(t, sock, "POST", su+"/v1/exports:batch", tokN8N, api.NDJSONType, []byte(batch))
	if err != nil || r.status != 200 {
		t.Fatalf("batch: %v %d %s", err, r.status, r.body)
	}
	var answers []api.BatchAnswer
	dec := json.NewDecoder(bytes.NewReader(r.body))
	for dec.More() {
		var ba api.BatchAnswer
		if err := dec.Decode(&ba); err != nil {
			t.Fatal(err)
		}
		answers = append(answers, ba)
	}
	wantStatus := []int{201, 422, 400, 200, 201}
	if len(answers) != len(wantStatus) {
		t.Fatalf("batch answered %d lines: %s", len(answers), r.body)
	}
	for i, w := range wantStatus {
		if answers[i].Status != w {
			t.Fatalf("batch line %d: %d, want %d: %s", i+1, answers[i].Status, w, r.body)
		}
	}
	if answers[0].Receipt.Size != answers[4].Receipt.Size {
		t.Fatalf("batch lines in different commits: %+v", answers)
	}
	rejs = append(rejs,
		rejection{name: "batch classification", reason: "classification_not_allowed", actor: "n8n-prod", seq: *answers[1].Error.Seq},
		rejection{name: "batch malformed", reason: "malformed_json", actor: "n8n-prod", seq: *answers[2].Error.Seq})
	accepted["b-1"], accepted["b-3"] = *answers[0].Receipt, *answers[4].Receipt
	leafs["b-1"], leafs["b-3"] = answers[0].Receipt.Leaf, answers[4].Receipt.Leaf

	// Seal now (operator only), then every accepted export is sealed with
	// a proof that verifies against the checkpoint, and unchanged.
	if r, _ := do(t, sock, "POST", su+"/v1/seal", tokN8N, "", nil); r.status != 403 {
		t.Fatalf("seal as exporter: %d", r.status)
	}
	r, err = do(t, sock, "POST", su+"/v1/seal", tokOperator, "", nil)
	var sa api.SealAnswer
	if err != nil || r.status != 200 || json.Unmarshal(r.body, &sa) != nil || !sa.Sealed {
		t.Fatalf("seal: %v %d %s", err, r.status, r.body)
	}
	r, err = do(t, tlsc, "GET", tu+"/v1/checkpoint", tokAuditor, "", nil)
	var cpi agent.CheckpointInfo
	if err != nil || r.status != 200 || json.Unmarshal(r.body, &cpi) != nil {
		t.Fatalf("checkpoint: %v %d %s", err, r.status, r.body)
	}
	cp, err := merkle.ParseCheckpoint([]byte(cpi.Text))
	if err != nil || cp.Size != sa.Checkpoint.Size {
		t.Fatalf("checkpoint %+v (%v), sealed %+v", cp, err, sa.Checkpoint)
	}
	for id, rc := range accepted {
		info := getExport(t, sock, su, id)
		if info.Status != agent.StatusSealed || info.Bundle != sa.Bundle || info.Leaf != leafs[id] || info.Leaf != rc.Leaf {
			t.Fatalf("%s: %s seq %d leaf %s bundle %s, want sealed in %s with leaf %s", id, info.Status, info.Seq, info.Leaf, info.Bundle, sa.Bundle, leafs[id])
		}
		if got := wire.FormatHash(merkle.LeafHash(info.Record)); got != info.Leaf {
			t.Fatalf("%s: record bytes hash to %s, leaf %s", id, got, info.Leaf)
		}
		var proof [][32]byte
		for _, h := range info.Proof {
			proof = append(proof, mustParseHash(t, h))
		}
		if err := merkle.VerifyInclusion(proof, info.Seq, cp.Size, cp.Root, mustParseHash(t, info.Leaf)); err != nil {
			t.Fatalf("%s: inclusion proof: %v", id, err)
		}
	}
	if r, _ := do(t, sock, "GET", su+"/v1/exports/x3", tokAuditor, "", nil); r.status != 404 {
		t.Fatalf("a rejected id has a status: %d %s", r.status, r.body)
	}
	r, err = do(t, sock, "GET", su+"/v1/status", tokOperator, "", nil)
	var st agent.Status
	if err != nil || r.status != 200 || json.Unmarshal(r.body, &st) != nil ||
		st.LastSeal == nil || st.LastSeal.Size != cp.Size || st.Outbox != 1 || st.TPM.State != agent.TPMOK {
		t.Fatalf("status: %v %d %s", err, r.status, r.body)
	}

	// SIGTERM: exit 0; then the journal holds each refusal with its reason.
	p.stop()
	j := a.openJournal(t)
	if err := j.Scrub(context.Background(), nil); err != nil {
		t.Fatalf("scrub: %v", err)
	}
	for _, rj := range rejs {
		_, rec, body := rejectedRecord(t, j, rj.seq)
		if rec.Type != custody.TypeExportRejected || rec.Actor.ID != rj.actor || !strings.Contains(body.Reason, rj.reason) || body.Policy == "" {
			t.Fatalf("%s: record %d is %s by %s: %q", rj.name, rj.seq, rec.Type, rec.Actor.ID, body.Reason)
		}
	}
	// Each accepted id once, unchanged.
	count := map[string]int{}
	if err := j.Records(context.Background(), 0, j.Size(), func(_ uint64, raw []byte) error {
		rec, err := custody.ParseRecord(raw)
		if err != nil || rec.Type != custody.TypeExport {
			return err
		}
		body, err := rec.ExportBody()
		if err != nil {
			return err
		}
		count[body.ExportID]++
		if l, ok := leafs[body.ExportID]; ok && l != wire.FormatHash(merkle.LeafHash(raw)) {
			return fmt.Errorf("export %s changed", body.ExportID)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	for id := range accepted {
		if count[id] != 1 {
			t.Fatalf("export %s journaled %d times", id, count[id])
		}
	}
	if p.logField("stopped", "msg") != "stopped" {
		t.Fatalf("no 'stopped' log line:\n%s", p.stderr)
	}
}

func getExport(t *testing.T, c *api.Client, base, id string) agent.ExportInfo {
	t.Helper()
	r, err := do(t, c, "GET", base+"/v1/exports/"+id, tokAuditor, "", nil)
	var info agent.ExportInfo
	if err != nil || r.status != 200 || json.Unmarshal(r.body, &info) != nil {
		t.Fatalf("GET export %s: %v %d %s", id, err, r.status, r.body)
	}
	return info
}

func mustParseHash(t *testing.T, s string) [32]byte {
	t.Helper()
	h, err := wire.ParseHash(s)
	if err != nil {
		t.Fatal(err)
	}
	return h
}
