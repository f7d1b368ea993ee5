package e2e

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edgeseal/edgeseal/agent"
	"github.com/edgeseal/edgeseal/agent/api"
	"github.com/edgeseal/edgeseal/bundle/custody"
)

// ingestRig is a running agent and helpers to post and read exports
// over its unix socket.
type ingestRig struct {
	a       *agentDir
	p       *agentProc
	postCSV func(token, id, wf, data string) httpReply
	refusal func(r httpReply, status int, code string) api.ErrorInfo
	get     func(token, id string, query ...string) httpReply
}

func newIngestRig(t *testing.T) *ingestRig {
	t.Helper()
	needAgent(t)
	a := newAgentDir(t, agentOpts{sealEvery: 1000, sealInterval: "1h", maxBody: "64 KiB"})
	p := a.start(t, true)
	sock := unixClient(a.socket)
	const base = "http://agent"
	postCSV := func(token, id, wf, data string) httpReply {
		t.Helper()
		ctype := "text/csv"
		if wf == "invoices-daily" {
			ctype = "application/json"
		}
		r, err := do(t, sock, "POST", base+"/v1/exports", token, ctype, []byte(data),
			api.HeaderID, id, api.HeaderWorkflow, wf, api.HeaderApp, "app",
			api.HeaderClassification, "internal", api.HeaderDestination, "archive")
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	refusal := func(r httpReply, status int, code string) api.ErrorInfo {
		t.Helper()
		var eb api.ErrorBody
		if r.status != status || json.Unmarshal(r.body, &eb) != nil || eb.Error.Code != code {
			t.Fatalf("want %d %s, got %d %s", status, code, r.status, r.body)
		}
		return eb.Error
	}
	get := func(token, id string, query ...string) httpReply {
		t.Helper()
		u := base + "/v1/exports/" + id
		if len(query) > 0 {
			u += "?" + query[0]
		}
		r, err := do(t, sock, "GET", u, token, "", nil)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	return &ingestRig{a: a, p: p, postCSV: postCSV, refusal: refusal, get: get}
}

const csv, csv2 = "month,total\n2024-05,20\n", "month,total\n2024-06,99\n"

// Export ids are scoped by principal, against the real binary over its
// unix socket: another principal's id is a new export of its own (never
// the first principal's receipt), a repeat with other data is 409
// id_conflict and journaled (naming no other principal), the same data is
// a 200 duplicate.
func TestIngestScopedIDsE2E(t *testing.T) {
	r0 := newIngestRig(t)
	a, p, postCSV, refusal := r0.a, r0.p, r0.postCSV, r0.refusal

	// Scoped ids.
	n8nRc := receiptOf(t, postCSV(tokN8N, "rep-x", "monthly-report", csv), 201)
	appRc := receiptOf(t, postCSV(tokAppsmith, "rep-x", "monthly-report", csv), 201)
	if appRc.Seq == n8nRc.Seq || appRc.Duplicate {
		t.Fatalf("appsmith's rep-x answered with n8n's receipt: %+v vs %+v", appRc, n8nRc)
	}
	dup := receiptOf(t, postCSV(tokN8N, "rep-x", "monthly-report", csv), 200)
	if !dup.Duplicate || dup.Seq != n8nRc.Seq {
		t.Fatalf("same principal, workflow and payload: %+v, original %+v", dup, n8nRc)
	}
	other := refusal(postCSV(tokN8N, "rep-x", "monthly-report", csv2), 409, api.CodeIDConflict)
	if other.Seq == nil || other.ExportID != "rep-x" || !strings.Contains(other.Message, "payload") {
		t.Fatalf("conflict answer not journaled or unclear: %+v", other)
	}
	wf := refusal(postCSV(tokN8N, "rep-x", "invoices-daily", fmt.Sprintf(e2eInvoice, 1)), 409, api.CodeIDConflict)
	if wf.Seq == nil || !strings.Contains(wf.Message, "workflow") {
		t.Fatalf("workflow conflict: %+v", wf)
	}
	appOther := refusal(postCSV(tokAppsmith, "rep-x", "monthly-report", csv2), 409, api.CodeIDConflict)
	if strings.Contains(appOther.Message, "n8n") {
		t.Fatalf("conflict names the other principal: %+v", appOther)
	}

	p.stop()
	j := a.openJournal(t)
	// The conflicts were journaled as refusals of n8n-prod and appsmith,
	// naming no other principal's data.
	for _, seq := range []uint64{*other.Seq, *wf.Seq, *appOther.Seq} {
		raw, err := j.Record(seq)
		if err != nil {
			t.Fatal(err)
		}
		rec, err := custody.ParseRecord(raw)
		if err != nil || rec.Type != custody.TypeExportRejected || !strings.Contains(string(rec.Body), "already used by this principal") {
			t.Fatalf("conflict record %d: %v %s", seq, err, raw)
		}
	}
}

// Reads are scoped by principal: each principal reads its own export of
// an id; another principal's id answers 404 exactly like an unknown one;
// an auditor reads any principal's, naming it when the id is ambiguous.
func TestIngestScopedReadsE2E(t *testing.T) {
	r0 := newIngestRig(t)
	postCSV, refusal, get := r0.postCSV, r0.refusal, r0.get
	receiptOf(t, postCSV(tokN8N, "only-n8n", "monthly-report", csv), 201)
	foreign, unknown := get(tokAppsmith, "only-n8n"), get(tokAppsmith, "only-xyz")
	if foreign.status != 404 || foreign.status != unknown.status ||
		!bytes.Equal(foreign.body, bytes.ReplaceAll(unknown.body, []byte("only-xyz"), []byte("only-n8n"))) {
		t.Fatalf("another principal's id answers %d %s; an unknown id %d %s", foreign.status, foreign.body, unknown.status, unknown.body)
	}
	if r := get(tokAppsmith, "only-n8n", "principal=n8n-prod"); r.status != 404 {
		t.Fatalf("an exporter naming another principal: %d %s", r.status, r.body)
	}
	var audit agent.ExportInfo
	if r := get(tokAuditor, "only-n8n"); r.status != 200 || json.Unmarshal(r.body, &audit) != nil || audit.Principal != "n8n-prod" {
		t.Fatalf("auditor GET only-n8n: %d %s", r.status, r.body)
	}
	n8nRc := receiptOf(t, postCSV(tokN8N, "rep-x", "monthly-report", csv), 201)
	appRc := receiptOf(t, postCSV(tokAppsmith, "rep-x", "monthly-report", csv), 201)
	// Each principal reads its own rep-x.
	for tok, want := range map[string]agent.ExportReceipt{tokN8N: n8nRc, tokAppsmith: appRc} {
		var info agent.ExportInfo
		if r := get(tok, "rep-x"); r.status != 200 || json.Unmarshal(r.body, &info) != nil || info.Seq != want.Seq {
			t.Fatalf("GET rep-x: %d %s, want seq %d", r.status, r.body, want.Seq)
		}
	}
	refusal(get(tokAuditor, "rep-x"), 409, api.CodeAmbiguousID)
	if r := get(tokAuditor, "rep-x", "principal=appsmith"); r.status != 200 || json.Unmarshal(r.body, &audit) != nil || audit.Seq != appRc.Seq {
		t.Fatalf("auditor GET rep-x of appsmith: %d %s", r.status, r.body)
	}
}

// A refused export reads as "refused", with its reason, to its sender
// only.
func TestIngestRefusedVisibleE2E(t *testing.T) {
	r0 := newIngestRig(t)
	postCSV, refusal, get := r0.postCSV, r0.refusal, r0.get
	bad := refusal(postCSV(tokN8N, "inv-bad", "invoices-daily", `{"invoice_no":"nope"}`), 422, "schema_violation")
	var info agent.ExportInfo
	if r := get(tokN8N, "inv-bad"); r.status != 200 || json.Unmarshal(r.body, &info) != nil ||
		info.Status != agent.StatusRefused || info.Reason == "" || bad.Seq == nil || info.Seq != *bad.Seq {
		t.Fatalf("GET refused export: %d %s (refusal %+v)", r.status, r.body, bad)
	}
	for _, tok := range []string{tokAppsmith, tokAuditor} {
		if r := get(tok, "inv-bad"); r.status != 404 {
			t.Fatalf("another principal reads a refusal: %d %s", r.status, r.body)
		}
	}

}

// An unauthenticated export call journals SHA-256 digests of its header
// text, not the text: a bounded record whatever was sent.
func TestIngestUnauthenticatedDigestsE2E(t *testing.T) {
	r0 := newIngestRig(t)
	a, p, refusal := r0.a, r0.p, r0.refusal
	// An unauthenticated call journals digests of its headers, not
	// their text.
	junkWF, junkApp, junkID := strings.Repeat("W", 1000), strings.Repeat("A", 1000), "id-"+strings.Repeat("I", 120)
	r, err := do(t, unixClient(a.socket), "POST", "http://agent/v1/exports", "wrong-token", "text/csv", []byte(csv),
		api.HeaderID, junkID, api.HeaderWorkflow, junkWF, api.HeaderApp, junkApp)
	if err != nil {
		t.Fatal(err)
	}
	unauth := refusal(r, 401, api.CodeUnauthorized)
	if unauth.Seq == nil {
		t.Fatalf("unauthenticated refusal not journaled: %s", r.body)
	}

	p.stop()
	j := a.openJournal(t)
	raw, rec, body := rejectedRecord(t, j, *unauth.Seq)
	sum := func(s string) string { d := sha256.Sum256([]byte(s)); return hex.EncodeToString(d[:]) }
	if rec.Type != custody.TypeExportRejected || rec.Actor.Kind != "anonymous" ||
		bytes.Contains(raw, []byte("WWWWWWWW")) || bytes.Contains(raw, []byte("AAAAAAAA")) || bytes.Contains(raw, []byte("IIIIIIII")) ||
		body.Workflow != "sha256:"+sum(junkWF) || body.App != "sha256:"+sum(junkApp) || !strings.Contains(body.Reason, sum(junkID)) {
		t.Fatalf("unauthenticated refusal journaled as %s", raw)
	}
	if len(raw) > 1024 {
		t.Fatalf("unauthenticated refusal record is %d bytes", len(raw))
	}
}

// The real agent's spool folder takes a regular file and refuses a
// symbolic link and a hard link to a file outside it, unread: nothing of
// the link targets is journaled. spool.mode is applied at start.
func TestSpoolUnsafeFilesE2E(t *testing.T) {
	needAgent(t)
	a := newAgentDir(t, agentOpts{sealEvery: 1000, sealInterval: "1h", maxBody: "64 KiB"})
	cfgPath := filepath.Join(a.dir, "agent.yaml")
	cfg, err := os.ReadFile(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	cfg = append(cfg, "spool:\n  dir: spool\n  poll: 50ms\n  principal: n8n-prod\n  mode: 0770\n"...)
	if err := os.WriteFile(cfgPath, cfg, 0o600); err != nil {
		t.Fatal(err)
	}
	spoolDir := filepath.Join(a.dir, "spool")
	if err := os.MkdirAll(spoolDir, 0o755); err != nil {
		t.Fatal(err)
	}
	const secret = "month,total\n2024-05,99\n" // as long as the good file
	secretPath := filepath.Join(a.dir, "secret.csv")
	if err := os.WriteFile(secretPath, []byte(secret), 0o600); err != nil {
		t.Fatal(err)
	}
	meta := `{"workflow":"monthly-report","app":"desktop","classification":"internal","destination":"archive","principal":"n8n-prod"}`
	writeFile := func(name, data string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(spoolDir, name), []byte(data), 0o640); err != nil {
			t.Fatal(err)
		}
	}
	writeFile("good.csv", csv)
	if err := os.Symlink(secretPath, filepath.Join(spoolDir, "leak.csv")); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(secretPath, filepath.Join(spoolDir, "hard.csv")); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"good.csv", "leak.csv", "hard.csv"} {
		writeFile(n+".meta.json", meta)
	}
	p := a.start(t, true)
	results := map[string]string{
		filepath.Join("done", "good.csv.receipt.json"):   "",
		filepath.Join("rejected", "leak.csv.error.json"): "is a symbolic link",
		filepath.Join("rejected", "hard.csv.error.json"): "has 2 links",
	}
	deadline := time.Now().Add(60 * time.Second)
	for f, why := range results {
		var b []byte
		for {
			if b, err = os.ReadFile(filepath.Join(spoolDir, f)); err == nil || time.Now().After(deadline) {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		if err != nil {
			t.Fatalf("%s not written: %v\n%s", f, err, p.stderr)
		}
		var doc struct {
			Error struct{ Code, Message string } `json:"error"`
		}
		if err := json.Unmarshal(b, &doc); err != nil {
			t.Fatal(err)
		}
		if why != "" && (doc.Error.Code != "unsafe_file" || !strings.Contains(doc.Error.Message, why)) {
			t.Fatalf("%s: %s", f, b)
		}
	}
	fi, err := os.Stat(spoolDir)
	if err != nil || fi.Mode().Perm() != 0o770 {
		t.Fatalf("spool folder mode %v %v, want 0770 (spool.mode)", fi.Mode(), err)
	}
	p.stop()
	j := a.openJournal(t)
	d := sha256.Sum256([]byte(secret))
	exports := 0
	if err := j.Records(t.Context(), 0, j.Size(), func(seq uint64, raw []byte) error {
		if strings.Contains(string(raw), hex.EncodeToString(d[:])) {
			t.Errorf("record %d names the link target's digest: %s", seq, raw)
		}
		if r, err := custody.ParseRecord(raw); err == nil && r.Type == custody.TypeExport {
			exports++
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if exports != 1 {
		t.Fatalf("%d exports journaled, want the good file only", exports)
	}
}
