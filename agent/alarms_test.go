package agent

import (
	"context"
	"os"
	"strings"
	gosync "sync"
	"testing"

	"github.com/edgeseal/edgeseal/bundle/custody"
)

// TestAlarmSink: an alarm raised at the start, before the sink is set
// (retention.short), reaches the sink when it is set, with the seq of its
// governance.alert record; a reload that alters a schema raises
// schema.changed with its record's seq; a refused reload raises
// policy.refused without one.
func TestAlarmSink(t *testing.T) {
	ctx := context.Background()
	g := newGovFiles(t)
	g.version("archive", `{"type":"object"}`, shortRetention, nil)
	a := g.start()
	var mu gosync.Mutex
	var got []Alarm
	a.r.core.SetAlarmSink(func(al Alarm) {
		mu.Lock()
		got = append(got, al)
		mu.Unlock()
	})
	g.version("archive", `{"type":"object","required":["x"]}`, shortRetention, nil)
	if _, err := a.src.Reload(ctx, a.r.core, "api", "op"); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(g.signedPath, []byte("not signed"), 0o644)
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
