package e2e

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	gosync "sync"
	"testing"
	"time"

	"github.com/edgeseal/edgeseal/agent"
	"github.com/edgeseal/edgeseal/bundle/custody"
	"github.com/edgeseal/edgeseal/internal/testenv"
	"github.com/edgeseal/edgeseal/sync"
	"github.com/edgeseal/edgeseal/sync/mqtttest"
)

// TestGovernanceAlertsOverMQTT: an agent on a signed policy syncing
// through Mosquitto to an archive. A reload whose schema changed bytes
// under the same name and version journals a governance.alert
// schema.changed record, publishes an alert naming its seq on the
// device's alert topic, which a monitoring subscriber receives, and the
// archive counts it (edgeseal_archive_device_alerts_total). The agent is
// stopped, the schema altered again and re-signed: the next start raises
// schema.changed against the policy in force before it, journaled and
// published the same way. A refused reload is published as policy.refused.
func TestGovernanceAlertsOverMQTT(t *testing.T) {
	needAgent(t)
	if mqtttest.Find() == "" {
		testenv.Missing(t, "mosquitto not installed")
	}
	brk := mqtttest.Start(t, nil)
	adir := t.TempDir()
	acfg := writeArchiveConfig(t, adir, brk.URL, "alerts-archive")
	keyFile, _ := archiveKeyOf(t, adir)
	a := newAgentDir(t, agentOpts{sealEvery: 1000, sealInterval: "1h", maxBody: "64 KiB"})
	sp := useSignedPolicy(t, a)
	enrollDevices(t, acfg, sp.trust)
	appendFile(t, filepath.Join(a.dir, "agent.yaml"), fmt.Sprintf("sync:\n  broker: %s\n  archive_key: %s\n", brk.URL, keyFile+".pub"))
	sp.version(t, e2ePolicy, 2)
	ar := startArchiveProc(t, acfg)

	// Monitoring: a subscriber to every device's alerts.
	var mu gosync.Mutex
	var seen []*sync.DeviceAlert
	mon, err := sync.NewSubscriber(sync.SubscriberOptions{Broker: brk.URL, ClientID: "e2e-monitor",
		Handler: func(context.Context, sync.Delivery) ([]byte, error) { return nil, nil },
		DeviceAlertHandler: func(_ context.Context, al *sync.DeviceAlert) {
			mu.Lock()
			seen = append(seen, al)
			mu.Unlock()
		}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, stopMon := context.WithCancel(t.Context())
	monDone := make(chan struct{})
	go func() { defer close(monDone); mon.Start(ctx) }()
	defer func() { stopMon(); <-monDone }()
	received := func(what string, ok func(*sync.DeviceAlert) bool) *sync.DeviceAlert {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		for {
			mu.Lock()
			i := slices.IndexFunc(seen, ok)
			var got *sync.DeviceAlert
			if i >= 0 {
				got = seen[i]
			}
			mu.Unlock()
			if got != nil {
				return got
			}
			if time.Now().After(deadline) {
				mu.Lock()
				defer mu.Unlock()
				t.Fatalf("%s: no such alert on MQTT after 60s; got %d: %+v\n%s", what, len(seen), seen, tail(ar.logs()))
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	archiveCount := func(kind string, want float64) {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		for {
			v, _ := getMetrics(t, ar.metrics).value("edgeseal_archive_device_alerts_total", "kind", kind)
			if v >= want {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("archive counted %v %s alerts, want %v\n%s", v, kind, want, tail(ar.logs()))
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	schemaPath := filepath.Join(a.dir, "schemas", "invoice-1.json")
	alterSchema := func(title string) {
		t.Helper()
		b, err := os.ReadFile(schemaPath)
		if err != nil {
			t.Fatal(err)
		}
		i := strings.Index(string(b), `"title": "`)
		j := strings.Index(string(b)[i+10:], `"`)
		b = []byte(string(b[:i+10]) + title + string(b[i+10+j:]))
		if err := os.WriteFile(schemaPath, b, 0o644); err != nil {
			t.Fatal(err)
		}
		sp.version(t, e2ePolicy, 2) // same text, invoice@1 with other bytes
	}
	// schemaAlert is the newest schema.changed alert in /v1/status.
	schemaAlert := func(st *agent.Status) *agent.GovernanceAlert {
		if st.Governance == nil {
			return nil
		}
		for i := len(st.Governance.Recent) - 1; i >= 0; i-- {
			if al := &st.Governance.Recent[i]; al.Kind == custody.AlertSchemaChanged && al.Subject == "invoice@1" {
				return al
			}
		}
		return nil
	}

	p := a.start(t, true)
	sock := unixClient(a.socket)
	waitStatus(t, a, p, "signed policy in force", func(st *agent.Status) bool { return st.PolicySigned != nil })

	// 1. A reload with the schema altered.
	alterSchema("Invoice export, altered at a reload")
	if r, err := do(t, sock, "POST", "http://agent/v1/policy/reload", tokOperator, "", nil); err != nil || r.status != http.StatusOK {
		t.Fatalf("reload: %d %s %v", r.status, r.body, err)
	}
	st := waitStatus(t, a, p, "schema.changed in /v1/status", func(st *agent.Status) bool { return schemaAlert(st) != nil })
	reloadSeq := schemaAlert(st).Seq
	got := received("schema.changed at the reload", func(al *sync.DeviceAlert) bool {
		return al.Kind == custody.AlertSchemaChanged && al.Seq != nil && *al.Seq == reloadSeq
	})
	if got.Site != "e2e-site" || got.Device != "dev-1" || !strings.Contains(got.Detail, "invoice@1") {
		t.Fatalf("alert %+v", got)
	}
	archiveCount(custody.AlertSchemaChanged, 1)

	// 2. A refused reload (unsigned file): policy.refused.
	good, err := os.ReadFile(sp.signedPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(sp.signedPath, []byte(e2ePolicy), 0o644); err != nil {
		t.Fatal(err)
	}
	if r, err := do(t, sock, "POST", "http://agent/v1/policy/reload", tokOperator, "", nil); err != nil || r.status != http.StatusUnprocessableEntity {
		t.Fatalf("unsigned reload: %d %s %v", r.status, r.body, err)
	}
	received("policy.refused", func(al *sync.DeviceAlert) bool { return al.Kind == agent.AlarmPolicyRefused && al.Seq == nil })
	archiveCount(agent.AlarmPolicyRefused, 1)
	if err := os.WriteFile(sp.signedPath, good, 0o644); err != nil {
		t.Fatal(err)
	}
	p.stop()

	// 3. Stopped: the schema altered again and re-signed; the start
	// compares with the policy in force before it.
	alterSchema("Invoice export, altered while stopped")
	p = a.start(t, true)
	st = waitStatus(t, a, p, "schema.changed at the start", func(st *agent.Status) bool {
		al := schemaAlert(st)
		return al != nil && al.Seq > reloadSeq
	})
	startSeq := schemaAlert(st).Seq
	received("schema.changed at the start", func(al *sync.DeviceAlert) bool {
		return al.Kind == custody.AlertSchemaChanged && al.Seq != nil && *al.Seq == startSeq
	})
	archiveCount(custody.AlertSchemaChanged, 2)
	p.stop()
	ar.stop(t)

	// Both alerts are journaled records.
	j := a.openJournal(t)
	for _, seq := range []uint64{reloadSeq, startSeq} {
		raw, err := j.Record(seq)
		if err != nil {
			t.Fatal(err)
		}
		rec, err := custody.ParseRecord(raw)
		if err != nil || rec.Type != custody.TypeGovernanceAlert {
			t.Fatalf("record %d: %s %v", seq, raw, err)
		}
		if b, err := custody.ParseGovernanceAlertBody(rec.Body); err != nil || b.Kind != custody.AlertSchemaChanged || b.Subject != "invoice@1" {
			t.Fatalf("record %d: %+v %v", seq, b, err)
		}
	}
}
