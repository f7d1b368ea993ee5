package evidence_test

import (
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/edgeseal/edgeseal/bundle"
	"github.com/edgeseal/edgeseal/bundle/bundletest"
	"github.com/edgeseal/edgeseal/bundle/custody"
	"github.com/edgeseal/edgeseal/bundle/evidence"
	"github.com/edgeseal/edgeseal/bundle/proof"
)

// TestSourcesFindRefused: an export id that names only an export the
// agent refused (an export.rejected record) is a *proof.RefusedError
// saying so, with the record, the principal and the reason, not a bare
// "export not found"; it still wraps proof.ErrNotFound. Another principal
// or an unknown id stays ErrNotFound.
func TestSourcesFindRefused(t *testing.T) {
	c := bundletest.MustChain(t, 0, bundletest.Options{})
	body, _ := json.Marshal(custody.RejectedBody{ExportID: "exp-refused", App: "n8n", Workflow: "monthly-report",
		Policy: "sha256:" + strings.Repeat("0", 64), Reason: "schema: data.amount: want number"})
	// Seq 0 is the agent.start; the rejection leads the rest.
	b0, err := c.Next(t.Context(), 1)
	if err != nil {
		t.Fatal(err)
	}
	c.Journal(custody.TypeExportRejected, custody.Actor{Kind: "principal", ID: "n8n-reports", Via: "api"}, body)
	b1, err := c.Next(t.Context(), 3)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	s := evidence.NewSources(nil)
	for i, b := range []*bundle.Bundle{b0, b1} {
		raw, err := b.Bytes()
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, []string{"a.bundle.tar", "b.bundle.tar"}[i])
		writeTestFile(t, p, raw)
		if err := s.AddBundles([]string{p}, nil); err != nil {
			t.Fatal(err)
		}
	}
	_, err = s.Find("exp-refused", "", "")
	var re *proof.RefusedError
	if !errors.As(err, &re) || !errors.Is(err, proof.ErrNotFound) || len(re.Refusals) != 1 {
		t.Fatalf("Find of a refused export: %v", err)
	}
	if msg := err.Error(); !strings.Contains(msg, "refused by the agent") || !strings.Contains(msg, "no export proof") ||
		!strings.Contains(msg, "export.rejected record 1 of site1/dev1") || !strings.Contains(msg, "want number") {
		t.Fatalf("message: %s", msg)
	}
	for _, q := range [][3]string{{"exp-refused", "someone-else", ""}, {"exp-refused", "", "site9/other"}, {"no-such", "", ""}} {
		if _, err := s.Find(q[0], q[1], q[2]); !errors.Is(err, proof.ErrNotFound) || errors.As(err, &re) {
			t.Fatalf("Find %v: %v, want a bare ErrNotFound", q, err)
		}
	}
}
