package metrics

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// The agent's metrics read their sources at scrape time; the outbox age
// counts from the oldest bundle's seal and is 0 when the outbox is empty;
// a failing outbox source fails the scrape of that metric only.
func TestAgentMetrics(t *testing.T) {
	m := NewAgent()
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	depth, oldest := 3, now.Add(-90*time.Second)
	var outboxErr error
	connected := true
	m.Watch(AgentSources{
		JournalSize: func() uint64 { return 42 },
		Outbox:      func(context.Context) (int, time.Time, error) { return depth, oldest, outboxErr },
		Sync:        func() SyncStats { return SyncStats{Connected: connected, Receipts: 7, Refusals: 1} },
		Now:         func() time.Time { return now },
	})
	m.ExportAccepted()
	m.ExportAccepted()
	m.ExportRejected("too_large")
	m.Sealed(250 * time.Millisecond)
	m.TPMError("quote")
	want := `
# HELP edgeseal_agent_outbox_bundles Sealed bundles in the outbox, not yet receipted by the archive.
# TYPE edgeseal_agent_outbox_bundles gauge
edgeseal_agent_outbox_bundles 3
# HELP edgeseal_agent_outbox_oldest_age_seconds Age of the oldest bundle in the outbox (since its seal); 0 when the outbox is empty.
# TYPE edgeseal_agent_outbox_oldest_age_seconds gauge
edgeseal_agent_outbox_oldest_age_seconds 90
`
	if err := testutil.GatherAndCompare(m.Registry(), strings.NewReader(want), "edgeseal_agent_outbox_bundles", "edgeseal_agent_outbox_oldest_age_seconds"); err != nil {
		t.Fatal(err)
	}
	for name, v := range map[string]float64{
		"edgeseal_agent_exports_accepted_total": 2, "edgeseal_agent_journal_records": 42,
		"edgeseal_agent_mqtt_connected": 1, "edgeseal_agent_receipts_total": 7, "edgeseal_agent_archive_rejections_total": 1,
		"edgeseal_agent_seals_total": 1,
	} {
		if got := gathered(t, m.Handler(slog.New(slog.DiscardHandler)), name); got != v {
			t.Errorf("%s = %v, want %v", name, got, v)
		}
	}
	if n, err := testutil.GatherAndCount(m.Registry(), "edgeseal_agent_exports_rejected_total", "edgeseal_agent_tpm_errors_total"); err != nil || n != 2 {
		t.Errorf("labelled series: %d %v", n, err)
	}
	depth = 0
	if got := gathered(t, m.Handler(slog.New(slog.DiscardHandler)), "edgeseal_agent_outbox_oldest_age_seconds"); got != 0 {
		t.Errorf("age of an empty outbox %v", got)
	}
	outboxErr = errors.New("journal closed")
	if _, err := m.Registry().Gather(); err == nil || !strings.Contains(err.Error(), "journal closed") {
		t.Errorf("gather with a failing outbox: %v", err)
	}
	if got := gathered(t, m.Handler(slog.New(slog.DiscardHandler)), "edgeseal_agent_journal_records"); got != 42 {
		t.Errorf("the other metrics are still served: journal_records %v", got)
	}
}

// gathered serves /metrics through h and returns the value of name's one
// unlabelled sample.
func gathered(t *testing.T, h http.Handler, name string) float64 {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	for l := range strings.SplitSeq(rec.Body.String(), "\n") {
		if v, ok := strings.CutPrefix(l, name+" "); ok {
			var f float64
			if _, err := fmt.Sscan(v, &f); err != nil {
				t.Fatal(err)
			}
			return f
		}
	}
	t.Fatalf("%s not served:\n%s", name, rec.Body.String())
	return 0
}

func TestArchiveMetrics(t *testing.T) {
	m := NewArchive()
	m.Watch(ArchiveSources{
		Stats: func() ArchiveStats {
			return ArchiveStats{Accepted: 5, Duplicates: 1, Refused: 2, Held: 8, LogSize: 5, QuarantineDropped: 3, AlertsSuppressed: 4, RepliesDropped: 6, DeviceAlertsDropped: 7}
		},
		MQTTConnected: func() bool { return false },
	})
	m.Alert("bundle.fork", "alarm")
	m.DeviceAlert("schema.changed")
	m.DeviceAlert("schema.changed")
	m.ProcessError()
	want := `
# HELP edgeseal_archive_verifications_total Bundles received and verified, by result: accepted, duplicate (answered with the stored receipt), refused (quarantined), held (answered before its predecessor was committed by another replica; sent again), error (not processed; delivered again later).
# TYPE edgeseal_archive_verifications_total counter
edgeseal_archive_verifications_total{result="accepted"} 5
edgeseal_archive_verifications_total{result="duplicate"} 1
edgeseal_archive_verifications_total{result="error"} 1
edgeseal_archive_verifications_total{result="held"} 8
edgeseal_archive_verifications_total{result="refused"} 2
# HELP edgeseal_archive_alerts_total Alerts raised (published on edgeseal/v1/alerts), by kind and severity.
# TYPE edgeseal_archive_alerts_total counter
edgeseal_archive_alerts_total{kind="bundle.fork",severity="alarm"} 1
# HELP edgeseal_archive_quarantine_dropped_total Quarantine entries dropped, oldest first, past the quarantine quotas.
# TYPE edgeseal_archive_quarantine_dropped_total counter
edgeseal_archive_quarantine_dropped_total 3
# HELP edgeseal_archive_alerts_suppressed_total Alerts not raised: one per device and reason per quarantine.alert_interval.
# TYPE edgeseal_archive_alerts_suppressed_total counter
edgeseal_archive_alerts_suppressed_total 4
# HELP edgeseal_archive_device_alerts_total Alerts devices published on their alert topics (edgeseal/v1/alerts/<site>/<device>), by kind ("other" for a kind the agent does not raise).
# TYPE edgeseal_archive_device_alerts_total counter
edgeseal_archive_device_alerts_total{kind="schema.changed"} 2
# HELP edgeseal_archive_device_alerts_dropped_total Device alerts dropped: too large, not well formed, or naming another device than their topic's.
# TYPE edgeseal_archive_device_alerts_dropped_total counter
edgeseal_archive_device_alerts_dropped_total 7
# HELP edgeseal_archive_replies_dropped_total Replies not published because too many waited for the broker (the agent sends the bundle again).
# TYPE edgeseal_archive_replies_dropped_total counter
edgeseal_archive_replies_dropped_total 6
# HELP edgeseal_archive_mqtt_connected 1 while the archive's subscriber is connected to the broker, else 0.
# TYPE edgeseal_archive_mqtt_connected gauge
edgeseal_archive_mqtt_connected 0
`
	if err := testutil.GatherAndCompare(m.Registry(), strings.NewReader(want),
		"edgeseal_archive_verifications_total", "edgeseal_archive_alerts_total", "edgeseal_archive_mqtt_connected",
		"edgeseal_archive_quarantine_dropped_total", "edgeseal_archive_alerts_suppressed_total", "edgeseal_archive_replies_dropped_total",
		"edgeseal_archive_device_alerts_total", "edgeseal_archive_device_alerts_dropped_total"); err != nil {
		t.Fatal(err)
	}
	// The server answers /metrics on a real listener and stops.
	srv, err := Start(t.Context(), "127.0.0.1:0", m.Handler(slog.New(slog.DiscardHandler)), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get("http://" + srv.Addr().String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), "edgeseal_archive_log_entries 5") {
		t.Fatalf("GET /metrics: %s\n%s", resp.Status, body)
	}
	if err := srv.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	if _, err := http.Get("http://" + srv.Addr().String() + "/metrics"); err == nil {
		t.Error("served after Close")
	}
}

func TestAgentGovernanceAlerts(t *testing.T) {
	m := NewAgent()
	m.Watch(AgentSources{
		JournalSize:      func() uint64 { return 0 },
		Outbox:           func(context.Context) (int, time.Time, error) { return 0, time.Time{}, nil },
		GovernanceAlerts: func() map[string]uint64 { return map[string]uint64{"destination.new": 2, "schema.changed": 1} },
	})
	want := `
# HELP edgeseal_agent_governance_alerts_total Governance alerts raised since the start (journaled as governance.alert records), by kind.
# TYPE edgeseal_agent_governance_alerts_total counter
edgeseal_agent_governance_alerts_total{kind="destination.new"} 2
edgeseal_agent_governance_alerts_total{kind="schema.changed"} 1
`
	if err := testutil.GatherAndCompare(m.Registry(), strings.NewReader(want), "edgeseal_agent_governance_alerts_total"); err != nil {
		t.Fatal(err)
	}
}
