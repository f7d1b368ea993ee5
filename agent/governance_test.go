package agent

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/edgeseal/edgeseal/agent/policy/signed"
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

// govFiles is a signed policy in a test directory: govPolicy and its
// schema doc-1.json under dir/pol, signed into dir/policy.signed.json,
// the admin set (alice, threshold 1) in dir.
type govFiles struct {
	t          *testing.T
	dir        string
	keys       []*signed.Key
	admins     string
	signedPath string
}

func newGovFiles(t *testing.T) *govFiles {
	t.Helper()
	dir := t.TempDir()
	keys, admins := signedtest.Admins(t, dir, 1, "alice")
	if err := os.Mkdir(filepath.Join(dir, "pol"), 0o755); err != nil {
		t.Fatal(err)
	}
	return &govFiles{t: t, dir: dir, keys: keys, admins: admins, signedPath: filepath.Join(dir, "policy.signed.json")}
}

// version writes govPolicy with the destinations dests and extra appended,
// the schema, and signs them with key (nil: alice).
func (g *govFiles) version(dests, schema, extra string, key *signed.Key) {
	g.t.Helper()
	p := filepath.Join(g.dir, "pol", "policy.yaml")
	if err := os.WriteFile(p, []byte(strings.Replace(govPolicy, "%s", dests, 1)+extra), 0o644); err != nil {
		g.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(g.dir, "pol", "doc-1.json"), []byte(schema), 0o644); err != nil {
		g.t.Fatal(err)
	}
	if key == nil {
		key = g.keys[0]
	}
	if err := os.WriteFile(g.signedPath, signedtest.Sign(g.t, p, key), 0o644); err != nil {
		g.t.Fatal(err)
	}
}

// start starts a core on the signed policy (startSigned).
func (g *govFiles) start(mod ...func(*Options)) *signedAgent {
	g.t.Helper()
	return startSigned(g.t, g.dir, g.signedPath, g.admins, mod...)
}

// shortRetention makes doc@1's minimum retention longer than the class r.
const shortRetention = "min_retention:\n  doc@1: 10y\nretention_classes:\n  r: 30d\n"

// TestGovernanceAlerts: a reload whose schema changes bytes under the
// same name@version, a reload adding a destination no earlier version
// had, and a reload signed by a key outside the admin set each journal a
// governance.alert, count it by kind and show it in /v1/status; going
// back to an earlier destination raises nothing.
func TestGovernanceAlerts(t *testing.T) {
	ctx := context.Background()
	g := newGovFiles(t)
	mallory, _ := signedtest.Admins(t, t.TempDir(), 1, "mallory")
	version := func(dests, schema string, signer int) {
		t.Helper()
		var k *signed.Key
		if signer != 0 {
			k = mallory[0]
		}
		g.version(dests, schema, "", k)
	}
	version("archive, share-a", `{"type":"object"}`, 0)

	a := g.start()
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
	g := newGovFiles(t)
	g.version("archive", `{"type":"object"}`, shortRetention, nil)
	r := g.start().r
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
// before it; with the policy index (PolicyChangesFile) and, from the
// journal itself, without one (a journal older than it), with one that is
// a symbolic link (refused) or that names records that are not
// policy.change records. A restart on the same policy raises nothing.
func TestGovernanceAcrossRestart(t *testing.T) {
	for _, index := range []string{"kept", "missing", "symlink", "wrong seqs"} {
		g := newGovFiles(t)
		dir := g.dir
		version := func(dests, schema string) { t.Helper(); g.version(dests, schema, "", nil) }
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
		a := g.start(stateDir)
		if got := alertsSince(a.r, 0); len(got) != 0 {
			t.Fatalf("first start raised %v", got)
		}
		a.r.close()
		// The same policy again: nothing.
		a = g.start(stateDir)
		if got := alertsSince(a.r, 0); len(got) != 0 {
			t.Fatalf("index %s: a restart on the same policy raised %v", index, got)
		}
		from := a.r.j.Size()
		ixPath := filepath.Join(dir, PolicyChangesFile)
		switch index {
		case "missing":
			if err := os.Remove(ixPath); err != nil {
				t.Fatal(err)
			}
		case "symlink":
			if err := os.Rename(ixPath, ixPath+".real"); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(ixPath+".real", ixPath); err != nil {
				t.Fatal(err)
			}
		case "wrong seqs": // the records of the last run but its policy.change
			var other []string
			for seq := from - 3; seq < from; seq++ {
				raw, _ := a.r.j.Record(seq)
				if rec, err := custody.ParseRecord(raw); err == nil && rec.Type != custody.TypePolicyChange {
					other = append(other, fmt.Sprint(seq))
				}
			}
			if err := os.WriteFile(ixPath, []byte(`{"seqs":[`+strings.Join(other, ",")+`]}`), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		a.r.close()
		version("archive, share-x", `{"type":"object","required":["y"]}`)
		a = g.start(stateDir)
		want := custody.AlertSchemaChanged + " doc@1|" + custody.AlertDestinationNew + " share-x"
		if got := alertsSince(a.r, from); strings.Join(got, "|") != want {
			t.Fatalf("index %s: alerts at the start\n got %v\nwant %s", index, got, want)
		}
		if n := a.r.core.GovernanceAlerts(); n[custody.AlertSchemaChanged] != 1 {
			t.Fatalf("counts %v", n)
		}
		a.r.close() // one simulator open at a time
	}
}
