package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/edgeseal/edgeseal/agent/config"
	"github.com/edgeseal/edgeseal/agent/policy"
	"github.com/edgeseal/edgeseal/bundle/custody"
	"github.com/edgeseal/edgeseal/bundle/merkle"
	"github.com/edgeseal/edgeseal/bundle/wire"
	"github.com/edgeseal/edgeseal/store"
)

const testInvoice = `{"invoice_no":"INV-000123","issued":"2024-05-01","customer":{"id":"C1","name":"ACME"},"lines":[{"sku":"A","qty":2,"amount":10}],"total":20}`

var (
	n8n     = &config.Principal{Name: "n8n-prod", Roles: []config.Role{config.RoleExporter}}
	auditor = &config.Principal{Name: "audit-team", Roles: []config.Role{config.RoleAuditor}}
)

// withPolicy gives the rig's core the example policy.
func (r *rig) withPolicy() *policy.Policy {
	r.t.Helper()
	pol, err := policy.Load("policy/testdata/policy.yaml")
	if err != nil {
		r.t.Fatal(err)
	}
	r.core.opts.Policy = pol
	return pol
}

func invoice(id string) IngestRequest {
	return IngestRequest{ID: id, Workflow: "invoices-daily", App: "n8n", Purpose: "month end",
		Classification: "internal", Destination: "archive", MediaType: "application/json", Data: []byte(testInvoice)}
}

func mustRecord(t *testing.T, j *store.Journal, seq uint64) *custody.Record {
	t.Helper()
	raw, err := j.Record(seq)
	if err != nil {
		t.Fatal(err)
	}
	r, err := custody.ParseRecord(raw)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// An accepted export is journaled once with the policy digest and the
// workflow's schema and retention; its id repeated answers the original
// receipt and journals nothing.
func TestIngestAcceptsOnceAndAnswersRepeats(t *testing.T) {
	ctx := context.Background()
	r := openSimRig(t, t.TempDir())
	pol := r.withPolicy()
	rc, err := r.core.Ingest(ctx, n8n, "test", invoice("inv-1"))
	if err != nil {
		t.Fatal(err)
	}
	if rc.Duplicate || rc.ExportID != "inv-1" || rc.Size != rc.Seq+1 {
		t.Fatalf("receipt %+v", rc)
	}
	rec := mustRecord(t, r.j, rc.Seq)
	body, err := rec.ExportBody()
	if err != nil {
		t.Fatal(err)
	}
	if body.Policy != pol.Digest() || body.Schema != "invoice@1" || body.Retention != "finance-10y" ||
		rec.Actor.ID != "n8n-prod" || rec.Actor.Via != "test" || body.Payload.MediaType != "application/json" {
		t.Fatalf("record %+v body %+v", rec, body)
	}
	if data, err := r.j.Payload(mustHash(t, body.Payload.Digest)); err != nil || string(data) != testInvoice {
		t.Fatalf("payload %q, %v", data, err)
	}
	size := r.j.Size()
	again, err := r.core.Ingest(ctx, n8n, "test", invoice("inv-1"))
	if err != nil {
		t.Fatal(err)
	}
	if !again.Duplicate || again.Seq != rc.Seq || again.Leaf != rc.Leaf || again.Digest != rc.Digest {
		t.Fatalf("repeat answered %+v, original %+v", again, rc)
	}
	if r.j.Size() != size {
		t.Fatalf("a repeated id was journaled: size %d -> %d", size, r.j.Size())
	}
	// A generated id is 128 bits of hex.
	gen, err := r.core.Ingest(ctx, n8n, "test", invoice(""))
	if err != nil || len(gen.ExportID) != 32 {
		t.Fatalf("generated id %q, %v", gen.ExportID, err)
	}
}

func mustHash(t *testing.T, s string) [32]byte {
	t.Helper()
	h, err := wire.ParseHash(s)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// Every refusal is journaled as export.rejected with who, what and why and
// no payload, and answered with the typed reason.
func TestIngestRejectionsAreJournaled(t *testing.T) {
	ctx := context.Background()
	r := openSimRig(t, t.TempDir())
	pol := r.withPolicy()
	bad := func(mod func(*IngestRequest)) IngestRequest {
		req := invoice("")
		mod(&req)
		return req
	}
	cases := []struct {
		name   string
		p      *config.Principal
		req    IngestRequest
		check  func(error) bool
		reason string
	}{
		{"auditor", auditor, invoice("x1"), func(e error) bool { var f *ForbiddenError; return errors.As(e, &f) }, "exporter"},
		{"unknown workflow", n8n, bad(func(r *IngestRequest) { r.Workflow = "payroll" }), isRule(policy.RuleUnknownWorkflow), "unknown_workflow"},
		{"schema", n8n, bad(func(r *IngestRequest) { r.Data = []byte(`{"invoice_no":"nope"}`) }), isRule(policy.RuleSchemaViolation), "schema_violation"},
		{"classification", n8n, bad(func(r *IngestRequest) { r.Classification = "secret" }), isRule(policy.RuleClassificationNotAllowed), "classification_not_allowed"},
		{"bad id", n8n, bad(func(r *IngestRequest) { r.ID = "../etc" }), isField("id"), "id"},
		{"no app", n8n, bad(func(r *IngestRequest) { r.App = "" }), isField("app"), "app"},
		{"control chars", n8n, bad(func(r *IngestRequest) { r.Purpose = "a\nb" }), isField("purpose"), "purpose"},
	}
	for _, c := range cases {
		before := r.j.Size()
		_, err := r.core.Ingest(ctx, c.p, "api", c.req)
		var rej *RejectedError
		if !errors.As(err, &rej) || !c.check(err) {
			t.Fatalf("%s: %v", c.name, err)
		}
		if r.j.Size() != before+1 || rej.Seq != before {
			t.Fatalf("%s: journal %d -> %d, rejection at %d", c.name, before, r.j.Size(), rej.Seq)
		}
		rec := mustRecord(t, r.j, rej.Seq)
		var body custody.RejectedBody
		if err := strictJSON(rec.Body, &body); err != nil {
			t.Fatal(err)
		}
		if rec.Type != custody.TypeExportRejected || rec.Actor.ID != c.p.Name || body.Policy != pol.Digest() ||
			!strings.Contains(body.Reason, c.reason) || body.ExportID != rej.ExportID {
			t.Fatalf("%s: record %+v body %+v", c.name, rec, body)
		}
		if body.Digest == "" {
			t.Fatalf("%s: rejection does not name the payload digest", c.name)
		}
		if _, err := r.j.Payload(mustHash(t, body.Digest)); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("%s: payload of a rejected export kept (%v)", c.name, err)
		}
	}
	// Reject journals attempts refused before the policy.
	err := r.core.Reject(ctx, custody.Actor{Kind: "anonymous", ID: "unauthenticated", Via: "api"}, IngestRequest{Workflow: "w"}, errors.New("missing bearer token"))
	var rej *RejectedError
	if !errors.As(err, &rej) || mustRecord(t, r.j, rej.Seq).Type != custody.TypeExportRejected {
		t.Fatalf("Reject: %v", err)
	}
	// A rejected id is not taken: it can still be exported.
	if _, err := r.core.Ingest(ctx, n8n, "api", invoice("x1")); err != nil {
		t.Fatalf("id refused once cannot be used: %v", err)
	}
}

func isRule(rule policy.Rule) func(error) bool {
	return func(err error) bool {
		var v *policy.Violation
		return errors.As(err, &v) && v.Rule == rule
	}
}

func isField(f string) func(error) bool {
	return func(err error) bool {
		var fe *FieldError
		return errors.As(err, &fe) && fe.Field == f
	}
}

func strictJSON(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	return dec.Decode(v)
}

// A batch is one commit: consecutive sequence numbers, rejections among
// them, repeats (earlier or within the batch) answered with the original.
func TestIngestBatchOneCommit(t *testing.T) {
	ctx := context.Background()
	r := openSimRig(t, t.TempDir())
	r.withPolicy()
	if _, err := r.core.Ingest(ctx, n8n, "api", invoice("old")); err != nil {
		t.Fatal(err)
	}
	before := r.j.Size()
	bad := invoice("b2")
	bad.Classification = "secret"
	lines := []BatchLine{
		{Req: invoice("b1")},
		{Req: bad},
		{Req: invoice("old")},
		{Req: invoice("b1")},
		{Err: &FieldError{Field: "data", Reason: "required"}},
		{Req: invoice("b3")},
	}
	res, err := r.core.IngestBatch(ctx, n8n, "api", lines)
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != len(lines) {
		t.Fatalf("%d results for %d lines", len(res), len(lines))
	}
	if res[0].Err != nil || res[0].Receipt.Duplicate || res[5].Err != nil {
		t.Fatalf("good lines: %+v %+v", res[0], res[5])
	}
	var rej *RejectedError
	if !errors.As(res[1].Err, &rej) || !isRule(policy.RuleClassificationNotAllowed)(res[1].Err) {
		t.Fatalf("line 2: %v", res[1].Err)
	}
	if !res[2].Receipt.Duplicate || res[2].Receipt.Seq >= before {
		t.Fatalf("line 3 (earlier id): %+v", res[2])
	}
	if !res[3].Receipt.Duplicate || res[3].Receipt.Seq != res[0].Receipt.Seq {
		t.Fatalf("line 4 (same id in batch): %+v vs %+v", res[3], res[0])
	}
	if !isField("data")(res[4].Err) || !errors.As(res[4].Err, &rej) {
		t.Fatalf("line 5: %v", res[4].Err)
	}
	// b1, b2 rejected, data rejected, b3: four records in one commit.
	if got := r.j.Size() - before; got != 4 {
		t.Fatalf("batch journaled %d records, want 4", got)
	}
	for _, br := range []BatchResult{res[0], res[5]} {
		if br.Receipt.Size != r.j.Size() {
			t.Fatalf("receipt size %d, journal %d: not one commit", br.Receipt.Size, r.j.Size())
		}
	}
}

// ExportStatus: journaled, then sealed with an inclusion proof that
// verifies against the checkpoint and the bundle that holds it.
func TestExportStatusAndProof(t *testing.T) {
	ctx := context.Background()
	r := openSimRig(t, t.TempDir())
	r.withPolicy()
	rc, err := r.core.Ingest(ctx, n8n, "api", invoice("s1"))
	if err != nil {
		t.Fatal(err)
	}
	info, err := r.core.ExportStatus(ctx, "n8n-prod", "s1")
	if err != nil || info.Status != StatusJournaled || info.Seq != rc.Seq || info.Leaf != rc.Leaf {
		t.Fatalf("before seal: %+v, %v", info, err)
	}
	var nf *NotFoundError
	if _, err := r.core.ExportStatus(ctx, "n8n-prod", "nope"); !errors.As(err, &nf) {
		t.Fatalf("unknown id: %v", err)
	}
	if _, err := r.core.Checkpoint(); !errors.As(err, &nf) {
		t.Fatalf("checkpoint before a seal: %v", err)
	}
	res, _ := r.seal()
	info, err = r.core.ExportStatus(ctx, "n8n-prod", "s1")
	if err != nil || info.Status != StatusSealed || info.Bundle != res.ID || info.Checkpoint == nil {
		t.Fatalf("after seal: %+v, %v", info, err)
	}
	if wire.FormatHash(merkle.LeafHash(info.Record)) != rc.Leaf {
		t.Fatal("record bytes do not hash to the leaf")
	}
	var proof [][32]byte
	for _, h := range info.Proof {
		proof = append(proof, mustHash(t, h))
	}
	cp, err := merkle.ParseCheckpoint([]byte(info.Checkpoint.Text))
	if err != nil {
		t.Fatal(err)
	}
	if err := merkle.VerifyInclusion(proof, info.Seq, cp.Size, cp.Root, mustHash(t, info.Leaf)); err != nil {
		t.Fatalf("inclusion proof: %v", err)
	}
	if info.Checkpoint.Root != wire.FormatHash(res.Checkpoint.Root) {
		t.Fatal("checkpoint root differs from the seal's")
	}
}

// Status reports the journal, the last seal (also after a restart), the
// outbox and the TPM, and a PCR change as pcr_mismatch naming the PCR.
func TestStatus(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	r := openSimRig(t, dir)
	r.withPolicy()
	st, err := r.core.Status(ctx)
	if err != nil || st.LastSeal != nil || st.TPM.State != TPMOK || st.JournalSize != r.j.Size() || st.Policy == "" {
		t.Fatalf("fresh status %+v, %v", st, err)
	}
	r.export(2, "st")
	res, _ := r.seal()
	r.close()

	r = openSimRig(t, dir)
	st, err = r.core.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.LastSeal == nil || st.LastSeal.Size != res.Checkpoint.Size || st.LastSeal.Counter != res.Counter ||
		st.LastSeal.Time.IsZero() || st.Outbox != 1 || st.Pending == 0 {
		t.Fatalf("status after restart %+v (seal %+v)", st, st.LastSeal)
	}
	if err := r.tpm.ExtendPCR(ctx, 7, []byte("kernel update")); err != nil {
		t.Fatal(err)
	}
	st, err = r.core.Status(ctx)
	if err != nil || st.TPM.State != TPMPCRMismatch || fmt.Sprint(st.TPM.Changed) != "[7]" {
		t.Fatalf("status after PCR change %+v, %v", st.TPM, err)
	}
}

// Ingest without a policy is a configuration error, not a panic.
func TestIngestNeedsPolicy(t *testing.T) {
	r := openSimRig(t, t.TempDir())
	var ce *ConfigError
	if _, err := r.core.Ingest(context.Background(), n8n, "api", invoice("p")); !errors.As(err, &ce) {
		t.Fatalf("got %v", err)
	}
}

// A batch larger than one commit of the journal (2 MiB memtable here, so
// about 300 KB of Badger's accounting a commit: keys, value pointers and
// small values, some 1700 exports) is journaled in consecutive commits,
// every line answered, in order, none twice.
func TestIngestBatchLargerThanOneCommit(t *testing.T) {
	ctx := context.Background()
	r := openSimRig(t, t.TempDir())
	r.withPolicy()
	before := r.j.Size()
	const n = 4000
	lines := make([]BatchLine, n)
	for i := range lines {
		req := invoice(fmt.Sprintf("big-%04d", i))
		req.Purpose = strings.Repeat("p", 700) // about 1 KiB a record
		lines[i] = BatchLine{Req: req}
	}
	res, err := r.core.IngestBatch(ctx, n8n, "api", lines)
	if err != nil {
		t.Fatal(err)
	}
	commits := map[uint64]bool{}
	for i, br := range res {
		if br.Err != nil {
			t.Fatalf("line %d: %v", i, br.Err)
		}
		if br.Receipt.Seq != before+uint64(i) {
			t.Fatalf("line %d has seq %d, want %d (in order)", i, br.Receipt.Seq, before+uint64(i))
		}
		commits[br.Receipt.Size] = true
	}
	if got := r.j.Size() - before; got != n {
		t.Fatalf("journaled %d records for %d lines", got, n)
	}
	if len(commits) < 2 {
		t.Fatalf("%d commits: the test no longer exceeds one commit", len(commits))
	}
}
