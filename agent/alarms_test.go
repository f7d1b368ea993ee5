package agent

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	gosync "sync"
	"testing"

	"github.com/edgeseal/edgeseal/agent/policy/signed/signedtest"
	"github.com/edgeseal/edgeseal/bundle/custody"
)

// TestAlarmSink: an alarm raised at the start, before the sink is set
// (retention.short), reaches the sink when it is set, with the seq of its
// governance.alert record; a reload that alters a schema raises
// schema.changed with its record's seq; a refused reload raises
// policy.refused without one.
func TestAlarmSink(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	keys, adminsPath := signedtest.Admins(t, dir, 1, "alice")
	polDir := filepath.Join(dir, "pol")
	os.Mkdir(polDir, 0o755)
	signedPath := filepath.Join(dir, "policy.signed.json")
	version := func(schema string) {
		t.Helper()
		p := filepath.Join(polDir, "policy.yaml")
		pol := strings.Replace(govPolicy, "%s", "archive", 1) + "min_retention:\n  doc@1: 10y\nretention_classes:\n  r: 30d\n"
		if err := os.WriteFile(p, []byte(pol), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(polDir, "doc-1.json"), []byte(schema), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(signedPath, signedtest.Sign(t, p, keys[0]), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	version(`{"type":"object"}`)
	a := startSigned(t, dir, signedPath, adminsPath)
	var mu gosync.Mutex
	var got []Alarm
	a.r.core.SetAlarmSink(func(al Alarm) {
		mu.Lock()
		got = append(got, al)
		mu.Unlock()
	})
	version(`{"type":"object","required":["x"]}`)
	if _, err := a.src.Reload(ctx, a.r.core, "api", "op"); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(signedPath, []byte("not signed"), 0o644)
	if _, err := a.src.Reload(ctx, a.r.core, "api", "op"); err == nil {
		t.Fatal("an unsigned reload was accepted")
	}
	mu.Lock()
	defer mu.Unlock()
	var kinds []string
	for _, al := range got {
		kinds = append(kinds, al.Kind)
	}
	want := []string{custody.AlertRetentionShort, custody.AlertSchemaChanged, custody.AlertRetentionShort, AlarmPolicyRefused}
	if strings.Join(kinds, ",") != strings.Join(want, ",") {
		t.Fatalf("alarms %v, want %v", kinds, want)
	}
	for _, al := range got[:3] {
		raw, err := a.r.j.Record(uint64(al.Seq))
		if err != nil {
			t.Fatal(err)
		}
		rec, _ := custody.ParseRecord(raw)
		b, err := custody.ParseGovernanceAlertBody(rec.Body)
		if err != nil || b.Kind != al.Kind || !strings.Contains(al.Detail, b.Subject) || al.Time.IsZero() {
			t.Fatalf("alarm %+v, record %d: %+v %v", al, al.Seq, b, err)
		}
	}
	if got[3].Seq != -1 || got[3].Detail == "" {
		t.Fatalf("policy.refused %+v", got[3])
	}
}
