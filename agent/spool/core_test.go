package spool

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/edgeseal/edgeseal/agent"
	"github.com/edgeseal/edgeseal/agent/config"
	"github.com/edgeseal/edgeseal/agent/policy"
	"github.com/edgeseal/edgeseal/bundle/custody"
	"github.com/edgeseal/edgeseal/bundle/merkle"
	"github.com/edgeseal/edgeseal/bundle/wire"
	"github.com/edgeseal/edgeseal/store"
	"github.com/edgeseal/edgeseal/tpm"
	"github.com/edgeseal/edgeseal/tpm/simulator"
)

const testPolicy = `version: 1
schemas:
  invoice@1: invoice-1.json
workflows:
  - name: invoices
    schema: invoice@1
    classifications: [internal]
    retention: finance-10y
    destinations: [archive]
    principals: [spool]
    max_size: 65536
  - name: reports
    media_types: [text/csv]
    classifications: [internal]
    retention: reports-7y
    destinations: [archive]
    principals: [appsmith]
    max_size: 65536
`

const testSchema = `{"type":"object","required":["no"],"additionalProperties":false,
 "properties":{"no":{"type":"string","pattern":"^INV-[0-9]+$"}}}`

// coreRig is a real agent.Core over a real journal and the simulator TPM.
type coreRig struct {
	j    *store.Journal
	tpm  *tpm.TPM
	core *agent.Core
}

func openCore(t *testing.T, dir string) *coreRig {
	t.Helper()
	ctx := context.Background()
	pol, err := policy.Parse([]byte(testPolicy), fstest.MapFS{"invoice-1.json": {Data: []byte(testSchema)}})
	if err != nil {
		t.Fatal(err)
	}
	r := &coreRig{}
	r.tpm, err = tpm.Open(ctx, "simulator:"+filepath.Join(dir, "sim"), tpm.Options{StateDir: filepath.Join(dir, "tpm"), Simulator: simulator.Open, Create: true})
	if err != nil {
		t.Fatal(err)
	}
	key, err := r.tpm.DataKey(ctx)
	if err != nil {
		t.Fatal(err)
	}
	r.j, err = store.Open(ctx, store.Options{Dir: filepath.Join(dir, "journal"), EncryptionKey: key})
	if err != nil {
		t.Fatal(err)
	}
	r.core, err = agent.Open(ctx, agent.Options{Site: "site-a", Device: "dev-1", Policy: pol}, r.j, r.tpm)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.close)
	return r
}

func (r *coreRig) close() {
	if r.j != nil {
		r.j.Close()
		r.j = nil
	}
	if r.tpm != nil {
		r.tpm.Close()
		r.tpm = nil
	}
}

// records counts the journal's records by type and export id.
func (r *coreRig) records(t *testing.T) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	err := r.j.Records(context.Background(), 0, r.j.Size(), func(_ uint64, rec []byte) error {
		pr, err := custody.ParseRecord(rec)
		if err != nil {
			return err
		}
		id := ""
		switch pr.Type {
		case custody.TypeExport:
			b, err := pr.ExportBody()
			if err != nil {
				return err
			}
			id = b.ExportID
		case custody.TypeExportRejected:
			var b custody.RejectedBody
			if err := json.Unmarshal(pr.Body, &b); err != nil {
				return err
			}
			id = b.ExportID + " " + b.Reason
		}
		out[pr.Type] = append(out[pr.Type], id)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestCoreSpool drives a real core: good, schema violation, unknown
// workflow, principal not allowed, bad sidecar; then a restart with the
// same pairs dropped again (a crash before the move) answers duplicates.
func TestCoreSpool(t *testing.T) {
	dir := t.TempDir()
	spoolDir := filepath.Join(dir, "spool")
	r := openCore(t, dir)
	w := newWatcher(t, spoolDir, CoreIngester(r.core), func(o *Options) { o.KeepDonePayloads = true })

	inv := `{"workflow":"invoices","app":"n8n","classification":"internal","destination":"archive","principal":"spool"}`
	writePair(t, spoolDir, "good.json", `{"no":"INV-1"}`, inv)
	writePair(t, spoolDir, "schema.json", `{"no":"nope"}`, inv)
	writePair(t, spoolDir, "unknown.json", `{"no":"INV-2"}`, strings.Replace(inv, "invoices", "payroll", 1))
	writePair(t, spoolDir, "notallowed.csv", "a,b\n", `{"workflow":"reports","app":"appsmith","classification":"internal","destination":"archive","principal":"spool"}`)
	writePair(t, spoolDir, "badmeta.json", `{"no":"INV-3"}`, `{"workflow":"invoices",`)
	scan(t, w)
	if st := scan(t, w); st.Done != 1 || st.Rejected != 4 {
		t.Fatalf("%+v", st)
	}

	var rc receiptDoc
	readJSON(t, filepath.Join(spoolDir, DoneDir, "good.json"+ReceiptSuffix), &rc)
	rec, err := r.j.Record(rc.Seq)
	if err != nil {
		t.Fatal(err)
	}
	if wire.FormatHash(merkle.LeafHash(rec)) != rc.Leaf {
		t.Fatalf("receipt leaf %s does not match record %d", rc.Leaf, rc.Seq)
	}
	wantCode := map[string]string{
		"schema.json": string(policy.RuleSchemaViolation), "unknown.json": string(policy.RuleUnknownWorkflow),
		"notallowed.csv": string(policy.RulePrincipalNotAllowed), "badmeta.json": "bad_meta",
	}
	for name, code := range wantCode {
		var d errDoc
		readJSON(t, filepath.Join(spoolDir, RejectedDir, name+ErrorSuffix), &d)
		if d.Error.Code != code || d.Journaled == nil {
			t.Errorf("%s: error file %+v, want code %s, journaled", name, d, code)
		}
	}
	recs := r.records(t)
	if len(recs[custody.TypeExport]) != 1 || len(recs[custody.TypeExportRejected]) != 4 {
		t.Fatalf("journal holds %v", recs)
	}
	for _, s := range recs[custody.TypeExportRejected] {
		if !strings.Contains(s, "spool-") {
			t.Errorf("rejection without the derived export id: %s", s)
		}
	}

	// A crash after journaling, before the move: the pair is back in the
	// spool (same name and content) when the agent restarts.
	copyFile(t, filepath.Join(spoolDir, DoneDir, "good.json"), filepath.Join(spoolDir, "good.json"))
	copyFile(t, filepath.Join(spoolDir, DoneDir, "good.json"+MetaSuffix), filepath.Join(spoolDir, "good.json"+MetaSuffix))
	r.close()
	r = openCore(t, dir)
	w = newWatcher(t, spoolDir, CoreIngester(r.core))
	scan(t, w)
	if st := scan(t, w); st.Done != 1 {
		t.Fatalf("after restart: %+v", st)
	}
	var again receiptDoc
	readJSON(t, filepath.Join(spoolDir, DoneDir, "good.json~2"+ReceiptSuffix), &again)
	if !again.Duplicate || again.Seq != rc.Seq || again.Leaf != rc.Leaf || again.ExportID != rc.ExportID {
		t.Fatalf("re-ingest after restart: %+v, want the original %+v", again.Receipt, rc.Receipt)
	}
	if n := len(r.records(t)[custody.TypeExport]); n != 1 {
		t.Fatalf("%d export records after the re-ingest, want 1", n)
	}
	if err := r.j.Scrub(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	write(t, to, string(b))
	now := time.Now()
	if strings.HasSuffix(to, MetaSuffix) {
		now = now.Add(time.Second)
	}
	if err := os.Chtimes(to, now, now); err != nil {
		t.Fatal(err)
	}
}

// lossyIngester journals through the real core, then loses the answer
// once: the state after a crash between journaling and moving.
type lossyIngester struct {
	Ingester
	lost  bool
	first Receipt
}

func (l *lossyIngester) Ingest(ctx context.Context, p *config.Principal, via string, req IngestRequest) (Receipt, error) {
	rc, err := l.Ingester.Ingest(ctx, p, via, req)
	if err == nil && !l.lost {
		l.lost, l.first = true, rc
		return Receipt{}, errTransient
	}
	return rc, err
}

func TestCoreSpoolAnswerLost(t *testing.T) {
	dir := t.TempDir()
	spoolDir := filepath.Join(dir, "spool")
	r := openCore(t, dir)
	li := &lossyIngester{Ingester: CoreIngester(r.core)}
	w := newWatcher(t, spoolDir, li)
	writePair(t, spoolDir, "a.json", `{"no":"INV-9"}`, `{"id":"inv-9","workflow":"invoices","app":"n8n","classification":"internal","destination":"archive","principal":"spool"}`)
	scan(t, w)
	if _, err := w.Scan(context.Background()); !errors.Is(err, errTransient) {
		t.Fatalf("want the lost answer as a transient error, got %v", err)
	}
	if st := scan(t, w); st.Done != 1 {
		t.Fatalf("retry: %+v", st)
	}
	var rc receiptDoc
	readJSON(t, filepath.Join(spoolDir, DoneDir, "a.json"+ReceiptSuffix), &rc)
	if rc.Seq != li.first.Seq || rc.Leaf != li.first.Leaf || !rc.Duplicate || rc.ExportID != "inv-9" {
		t.Fatalf("receipt %+v, want the original %+v", rc.Receipt, li.first)
	}
	if n := len(r.records(t)[custody.TypeExport]); n != 1 {
		t.Fatalf("%d export records, want 1", n)
	}
}
