package agent

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/edgeseal/edgeseal/agent/policy/signed/signedtest"
	"github.com/edgeseal/edgeseal/bundle/custody"
)

const govPolicy = `version: 1
schemas:
  doc@1: doc-1.json
workflows:
  - name: w
    schema: doc@1
    classifications: [internal]
    retention: r
    destinations: [%s]
    principals: [exp]
    max_size: 100
`

// TestGovernanceAlerts: a reload whose schema changes bytes under the
// same name@version, a reload adding a destination no earlier version
// had, and a reload signed by a key outside the admin set each journal a
// governance.alert, count it by kind and show it in /v1/status; going
// back to an earlier destination raises nothing.
func TestGovernanceAlerts(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	keys, adminsPath := signedtest.Admins(t, dir, 1, "alice")
	mallory, _ := signedtest.Admins(t, t.TempDir(), 1, "mallory")
	polDir := filepath.Join(dir, "pol")
	os.Mkdir(polDir, 0o755)
	signedPath := filepath.Join(dir, "policy.signed.json")
	version := func(dests, schema string, signer int) {
		t.Helper()
		p := filepath.Join(polDir, "policy.yaml")
		if err := os.WriteFile(p, []byte(strings.Replace(govPolicy, "%s", dests, 1)), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(polDir, "doc-1.json"), []byte(schema), 0o644); err != nil {
			t.Fatal(err)
		}
		k := keys[0]
		if signer != 0 {
			k = mallory[0]
		}
		if err := os.WriteFile(signedPath, signedtest.Sign(t, p, k), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	version("archive, share-a", `{"type":"object"}`, 0)

	a := startSigned(t, dir, signedPath, adminsPath)
	src, r := a.src, a.r
	reload := func(wantErr bool) {
		t.Helper()
		if _, err := src.Reload(ctx, r.core, "api", "op"); (err != nil) != wantErr {
			t.Fatalf("reload: %v (want error %v)", err, wantErr)
		}
	}
	// 1: schema bytes change under doc@1.
	version("archive, share-a", `{"type":"object","required":["x"]}`, 0)
	reload(false)
	// 2: share-a dropped; 3: share-a back (seen before) and share-b new.
	version("archive", `{"type":"object","required":["x"]}`, 0)
	reload(false)
	version("archive, share-a, share-b", `{"type":"object","required":["x"]}`, 0)
	reload(false)
	// 4: signed by a key outside the admin set: refused, alert.
	version("archive", `{"type":"object"}`, 1)
	reload(true)

	var got []string
	for seq := range r.j.Size() {
		raw, _ := r.j.Record(seq)
		rec, err := custody.ParseRecord(raw)
		if err != nil {
			t.Fatal(err)
		}
		if rec.Type != custody.TypeGovernanceAlert {
			continue
		}
		b, err := custody.ParseGovernanceAlertBody(rec.Body)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, b.Kind+" "+b.Subject)
	}
	want := []string{custody.AlertSchemaChanged + " doc@1", custody.AlertDestinationNew + " share-b", custody.AlertSignerUnknown + " " + mallory[0].KeyID()}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("governance.alert records\n got %v\nwant %v", got, want)
	}
	n := r.core.GovernanceAlerts()
	if n[custody.AlertSchemaChanged] != 1 || n[custody.AlertDestinationNew] != 1 || n[custody.AlertSignerUnknown] != 1 {
		t.Fatalf("counts %v", n)
	}
	st, err := r.core.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Governance == nil || len(st.Governance.Recent) != 3 || st.Governance.Recent[2].Kind != custody.AlertSignerUnknown || st.Governance.Recent[0].Seq == 0 {
		t.Fatalf("status governance %+v", st.Governance)
	}
}

// TestGovernanceShortRetention: a policy whose workflow keeps exports for
// less than its schema's min_retention is put in force with a
// retention.short alert journaled.
func TestGovernanceShortRetention(t *testing.T) {
	dir := t.TempDir()
	keys, adminsPath := signedtest.Admins(t, dir, 1, "alice")
	polDir := filepath.Join(dir, "pol")
	os.Mkdir(polDir, 0o755)
	p := filepath.Join(polDir, "policy.yaml")
	pol := strings.Replace(govPolicy, "%s", "archive", 1) + "min_retention:\n  doc@1: 10y\nretention_classes:\n  r: 30d\n"
	os.WriteFile(p, []byte(pol), 0o644)
	os.WriteFile(filepath.Join(polDir, "doc-1.json"), []byte(`{"type":"object"}`), 0o644)
	signedPath := filepath.Join(dir, "policy.signed.json")
	os.WriteFile(signedPath, signedtest.Sign(t, p, keys[0]), 0o644)
	r := startSigned(t, dir, signedPath, adminsPath).r
	pl := r.core.Policy()
	raw, _ := r.j.Record(r.j.Size() - 1)
	rec, err := custody.ParseRecord(raw)
	if err != nil || rec.Type != custody.TypeGovernanceAlert {
		t.Fatalf("last record %s %v", raw, err)
	}
	b, err := custody.ParseGovernanceAlertBody(rec.Body)
	if err != nil || b.Kind != custody.AlertRetentionShort || b.Subject != "w" || b.Policy != pl.Digest() || !strings.Contains(b.Detail, "10y") && !strings.Contains(b.Detail, "87600h") {
		t.Fatalf("alert %+v %v", b, err)
	}
	if n := r.core.GovernanceAlerts()[custody.AlertRetentionShort]; n != 1 {
		t.Fatalf("count %d", n)
	}
}

// TestGovernanceAcrossRestart: a schema altered under the same name and
// version and a destination added while the agent was stopped raise
// their alerts at the next start, compared with the policy in force
// before it; with the policy index (PolicyChangesFile) and, for a journal
// without one, from the journal itself. A restart on the same policy
// raises nothing.
func TestGovernanceAcrossRestart(t *testing.T) {
	for _, withIndex := range []bool{true, false} {
		dir := t.TempDir()
		keys, adminsPath := signedtest.Admins(t, dir, 1, "alice")
		polDir := filepath.Join(dir, "pol")
		os.Mkdir(polDir, 0o755)
		signedPath := filepath.Join(dir, "policy.signed.json")
		version := func(dests, schema string) {
			t.Helper()
			p := filepath.Join(polDir, "policy.yaml")
			if err := os.WriteFile(p, []byte(strings.Replace(govPolicy, "%s", dests, 1)), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(polDir, "doc-1.json"), []byte(schema), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(signedPath, signedtest.Sign(t, p, keys[0]), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		stateDir := func(o *Options) { o.StateDir = dir }
		alertsSince := func(r *rig, from uint64) []string {
			t.Helper()
			var got []string
			for seq := from; seq < r.j.Size(); seq++ {
				raw, _ := r.j.Record(seq)
				rec, err := custody.ParseRecord(raw)
				if err != nil {
					t.Fatal(err)
				}
				if rec.Type == custody.TypeGovernanceAlert {
					b, err := custody.ParseGovernanceAlertBody(rec.Body)
					if err != nil {
						t.Fatal(err)
					}
					got = append(got, b.Kind+" "+b.Subject)
				}
			}
			return got
		}
		version("archive", `{"type":"object"}`)
		a := startSigned(t, dir, signedPath, adminsPath, stateDir)
		if got := alertsSince(a.r, 0); len(got) != 0 {
			t.Fatalf("first start raised %v", got)
		}
		a.r.close()
		// The same policy again: nothing.
		a = startSigned(t, dir, signedPath, adminsPath, stateDir)
		if got := alertsSince(a.r, 0); len(got) != 0 {
			t.Fatalf("index %v: a restart on the same policy raised %v", withIndex, got)
		}
		from := a.r.j.Size()
		a.r.close()
		if !withIndex {
			if err := os.Remove(filepath.Join(dir, PolicyChangesFile)); err != nil {
				t.Fatal(err)
			}
		}
		version("archive, share-x", `{"type":"object","required":["y"]}`)
		a = startSigned(t, dir, signedPath, adminsPath, stateDir)
		want := custody.AlertSchemaChanged + " doc@1|" + custody.AlertDestinationNew + " share-x"
		if got := alertsSince(a.r, from); strings.Join(got, "|") != want {
			t.Fatalf("index %v: alerts at the start\n got %v\nwant %s", withIndex, got, want)
		}
		if n := a.r.core.GovernanceAlerts(); n[custody.AlertSchemaChanged] != 1 {
			t.Fatalf("counts %v", n)
		}
		a.r.close() // one simulator open at a time
	}
}
