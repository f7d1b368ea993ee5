package agent

import (
	"context"
	"crypto/sha256"
	"errors"
	"testing"

	"github.com/edgeseal/edgeseal/agent/config"
	"github.com/edgeseal/edgeseal/bundle/custody"
)

var appsmith = &config.Principal{Name: "appsmith", Roles: []config.Role{config.RoleExporter}}

func report(id, csv string) IngestRequest {
	return IngestRequest{ID: id, Workflow: "monthly-report", App: "appsmith", Classification: "internal",
		Destination: "archive", MediaType: "text/csv", Data: []byte(csv)}
}

func wantConflict(t *testing.T, err error, differs string) *RejectedError {
	t.Helper()
	var rej *RejectedError
	var ic *IDConflictError
	if !errors.As(err, &rej) || !errors.As(err, &ic) || ic.Differs != differs {
		t.Fatalf("want a journaled id conflict on the %s, got %v", differs, err)
	}
	return rej
}

// A journal written before ids were scoped keyed exports by
// "export/<id>": those ids stay their principal's after the upgrade
// (duplicate, conflict, status), across a restart, and are no other
// principal's.
func TestLegacyExportKeysStillKnown(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	r := openSimRig(t, dir)
	r.withPolicy()
	req := invoice("inv-old")
	e, _ := r.core.exportEntry(custody.Actor{Kind: "principal", ID: n8n.Name, Via: "api"}, n8n.Name, "inv-old", req, sha256.Sum256(req.Data))
	e.Key = LegacyExportKey("inv-old") // the layout before scoping
	old, err := r.j.Append(ctx, e)
	if err != nil {
		t.Fatal(err)
	}
	check := func(appsmithHasOwn bool) {
		t.Helper()
		rc, err := r.core.Ingest(ctx, n8n, "api", invoice("inv-old"))
		if err != nil || !rc.Duplicate || rc.Seq != old.Seq {
			t.Fatalf("repeat of a legacy id: %+v %v, want a duplicate of %d", rc, err, old.Seq)
		}
		changed := invoice("inv-old")
		changed.Data = []byte(`{"invoice_no":"INV-000999","issued":"2024-05-01","customer":{"id":"C1","name":"ACME"},"lines":[{"sku":"A","qty":2,"amount":10}],"total":20}`)
		_, err = r.core.Ingest(ctx, n8n, "api", changed)
		wantConflict(t, err, "payload")
		info, err := r.core.ExportStatus(ctx, n8n.Name, "inv-old")
		if err != nil || info.Seq != old.Seq || info.Principal != n8n.Name {
			t.Fatalf("status of a legacy id: %+v %v", info, err)
		}
		info, err = r.core.ExportStatus(ctx, appsmith.Name, "inv-old")
		var nf *NotFoundError
		if appsmithHasOwn && (err != nil || info.Seq == old.Seq) || !appsmithHasOwn && !errors.As(err, &nf) {
			t.Fatalf("appsmith reads inv-old: %+v %v", info, err)
		}
	}
	check(false)
	// Another principal's own export of the same id is a new one.
	rc, err := r.core.Ingest(ctx, appsmith, "api", report("inv-old", "a,b\n1,2\n"))
	if err != nil || rc.Duplicate || rc.Seq == old.Seq {
		t.Fatalf("appsmith's inv-old: %+v %v", rc, err)
	}
	r.close() // a restart
	r = openSimRig(t, dir)
	r.withPolicy()
	check(true)
}

// In one batch, a repeated id with the same workflow and payload is a
// duplicate of its first line; with another payload it is refused as a
// conflict and journaled.
func TestBatchRepeatedIDs(t *testing.T) {
	ctx := context.Background()
	r := openSimRig(t, t.TempDir())
	r.withPolicy()
	size := r.j.Size()
	res, err := r.core.IngestBatch(ctx, appsmith, "api", []BatchLine{
		{Req: report("r-1", "a\n1\n")}, {Req: report("r-1", "a\n1\n")}, {Req: report("r-1", "a\n2\n")},
	})
	if err != nil {
		t.Fatal(err)
	}
	if res[0].Err != nil || res[1].Err != nil || !res[1].Receipt.Duplicate || res[1].Receipt.Seq != res[0].Receipt.Seq {
		t.Fatalf("first two lines: %+v", res[:2])
	}
	rej := wantConflict(t, res[2].Err, "payload")
	if r.j.Size() != size+2 || rej.Seq != size+1 {
		t.Fatalf("journal grew from %d to %d; conflict at %d", size, r.j.Size(), rej.Seq)
	}
}

// A refused id reads as refused, with the reason of its first refusal, to
// its principal only; every refusal is journaled; once the id is
// accepted it reads as the export.
func TestRefusedStatus(t *testing.T) {
	ctx := context.Background()
	r := openSimRig(t, t.TempDir())
	r.withPolicy()
	bad := invoice("inv-r")
	bad.Classification = "secret"
	var rej1, rej2 *RejectedError
	if _, err := r.core.Ingest(ctx, n8n, "api", bad); !errors.As(err, &rej1) {
		t.Fatal(err)
	}
	if _, err := r.core.Ingest(ctx, n8n, "api", bad); !errors.As(err, &rej2) || rej2.Seq == rej1.Seq {
		t.Fatalf("second refusal: %v", err)
	}
	info, err := r.core.ExportStatus(ctx, n8n.Name, "inv-r")
	if err != nil || info.Status != StatusRefused || info.Seq != rej1.Seq || info.Reason == "" {
		t.Fatalf("status of a refused id: %+v %v", info, err)
	}
	var nf *NotFoundError
	if _, err := r.core.ExportStatus(ctx, appsmith.Name, "inv-r"); !errors.As(err, &nf) {
		t.Fatalf("another principal reads a refusal: %v", err)
	}
	rc, err := r.core.Ingest(ctx, n8n, "api", invoice("inv-r"))
	if err != nil {
		t.Fatal(err)
	}
	if info, err := r.core.ExportStatus(ctx, n8n.Name, "inv-r"); err != nil || info.Status != StatusJournaled || info.Seq != rc.Seq {
		t.Fatalf("status once accepted: %+v %v", info, err)
	}
}
