package e2e

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	gosync "sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/edgeseal/edgeseal/sync"
)

// scrape is one /metrics answer, parsed.
type scrape map[string]*dto.MetricFamily

// getMetrics GETs http://addr/metrics and parses the text format.
func getMetrics(t *testing.T, addr string) scrape {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatalf("scrape %s: %v", addr, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("scrape %s: %s", addr, resp.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("scrape %s: parse: %v", addr, err)
	}
	return fams
}

// value is the counter, gauge or histogram count of the series of name
// with the given label pairs; ok is false when there is none.
func (s scrape) value(name string, labels ...string) (float64, bool) {
	f := s[name]
	if f == nil {
		return 0, false
	}
next:
	for _, m := range f.Metric {
		for i := 0; i+1 < len(labels); i += 2 {
			found := false
			for _, lp := range m.Label {
				if lp.GetName() == labels[i] && lp.GetValue() == labels[i+1] {
					found = true
				}
			}
			if !found {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue(), true
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount()), true
		}
	}
	return 0, false
}

// get is value, failing when the series is absent.
func (s scrape) get(t *testing.T, name string, labels ...string) float64 {
	t.Helper()
	v, ok := s.value(name, labels...)
	if !ok {
		t.Fatalf("metric %s%v absent", name, labels)
	}
	return v
}

// startArchive writes an archive config in dir (embedded broker and
// metrics on free loopback ports, JSON logs), enrolls and approves the
// DEVICE.json files with the CLI, and starts the daemon.
func startArchive(t *testing.T, dir string, devices ...string) *archiveProc {
	t.Helper()
	cfg := writeArchiveConfig(t, dir, "", "")
	archiveKeyOf(t, dir)
	enrollDevices(t, cfg, devices...)
	return startArchiveProc(t, cfg)
}

// TestMetricsUnderLoad runs a real agent and a real archive (processes,
// embedded broker), sends a few hundred exports of which some are refused
// for known reasons plus one bundle the archive must refuse, and checks
// that each metric of both /metrics endpoints moved as the load says.
func TestMetricsUnderLoad(t *testing.T) {
	needAgent(t)
	a := newAgentDir(t, agentOpts{sealEvery: 50, sealInterval: "1s", maxBody: "64 KiB"})
	ar := startArchive(t, t.TempDir(), enrollFile(t, a))
	appendFile(t, filepath.Join(a.dir, "agent.yaml"), fmt.Sprintf("sync:\n  broker: %s\n  archive_key: %s\nmetrics:\n  listen: 127.0.0.1:0\n", ar.broker, ar.keyFile+".pub"))
	p := a.start(t, true)
	// The listener may be logged just after readiness: wait for it.
	var agentMetrics string
	for deadline := time.Now().Add(20 * time.Second); agentMetrics == "" && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		agentMetrics = p.logField("metrics: serving /metrics", "addr")
	}
	if agentMetrics == "" {
		t.Fatalf("agent logged no metrics address\n%s", p.stderr)
	}
	before := getMetrics(t, agentMetrics)
	archBefore := getMetrics(t, ar.metrics)

	// The load: accepted invoices, and refusals by policy rule and by
	// missing authentication (under the API's journaling rate limit).
	const (
		nAccepted  = 240
		nUnknownWF = 30
		nClass     = 20
		nUnauth    = 3
	)
	c := unixClient(a.socket)
	type job struct {
		body   []byte
		token  string
		status int
	}
	var jobs []job
	for i := range nAccepted {
		jobs = append(jobs, job{fmt.Appendf(nil, `{"id":"ok-%d","workflow":"invoices-daily","app":"n8n","classification":"internal","destination":"archive","data":%s}`,
			i, fmt.Sprintf(e2eInvoice, i)), tokN8N, http.StatusCreated})
	}
	for i := range nUnknownWF {
		jobs = append(jobs, job{fmt.Appendf(nil, `{"id":"wf-%d","workflow":"no-such-flow","app":"n8n","classification":"internal","destination":"archive","data":%s}`,
			i, fmt.Sprintf(e2eInvoice, i)), tokN8N, http.StatusUnprocessableEntity})
	}
	for i := range nClass {
		jobs = append(jobs, job{fmt.Appendf(nil, `{"id":"cl-%d","workflow":"invoices-daily","app":"n8n","classification":"top-secret","destination":"archive","data":%s}`,
			i, fmt.Sprintf(e2eInvoice, i)), tokN8N, http.StatusUnprocessableEntity})
	}
	work := make(chan job)
	var wg gosync.WaitGroup
	errs := make(chan string, len(jobs))
	for range 8 {
		wg.Go(func() {
			for j := range work {
				r, err := do(t, c, "POST", "http://agent/v1/exports", j.token, "application/json", j.body)
				if err != nil || r.status != j.status {
					errs <- fmt.Sprintf("%s: %d %s %v (want %d)", j.body[:20], r.status, r.body, err, j.status)
				}
			}
		})
	}
	for _, j := range jobs {
		work <- j
	}
	close(work)
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Fatalf("export: %s", e)
	}
	for i := range nUnauth {
		r, err := do(t, c, "POST", "http://agent/v1/exports", "wrong-token-"+fmt.Sprint(i), "application/json", []byte(`{"workflow":"invoices-daily"}`))
		if err != nil || r.status != http.StatusUnauthorized {
			t.Fatalf("unauthenticated export: %d %s %v", r.status, r.body, err)
		}
	}

	// A bundle from a device the archive does not know: refused,
	// quarantined, alerted, answered with a signed rejection.
	rejected := make(chan string, 1)
	ghost := newOutbox(t)
	if err := ghost.PutOutbox(t.Context(), "00000000000000000001", []byte("not a bundle")); err != nil {
		t.Fatal(err)
	}
	gp, err := sync.NewPublisher(sync.PublisherOptions{Broker: ar.broker, Site: "e2e-site", Device: "ghost", Outbox: ghost, ArchiveKey: ar.pub,
		OnReceipt: func(context.Context, string, []byte) error { return nil },
		OnRejection: func(_ context.Context, id string, rej *sync.Rejection, _ []byte) {
			select {
			case rejected <- rej.Reason:
			default:
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	gctx, stopGhost := context.WithCancel(t.Context())
	ghostDone := make(chan struct{})
	go func() { _ = gp.Start(gctx); close(ghostDone) }()
	select {
	case <-rejected:
	case <-time.After(60 * time.Second):
		t.Fatal("no rejection of the ghost bundle within 60s")
	}
	stopGhost()
	<-ghostDone

	// Wait until everything sealed was delivered and receipted.
	var after, archAfter scrape
	deadline := time.Now().Add(90 * time.Second)
	for {
		after = getMetrics(t, agentMetrics)
		archAfter = getMetrics(t, ar.metrics)
		seals, _ := after.value("edgeseal_agent_seals_total")
		receipts, _ := after.value("edgeseal_agent_receipts_total")
		depth, _ := after.value("edgeseal_agent_outbox_bundles")
		accepted, _ := archAfter.value("edgeseal_archive_verifications_total", "result", "accepted")
		if seals > 0 && depth == 0 && receipts == seals && accepted == seals {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not drained in 90s: seals %v receipts %v outbox %v archive accepted %v\n%s\n%s", seals, receipts, depth, accepted, p.stderr, ar.stderr)
		}
		time.Sleep(200 * time.Millisecond)
	}

	delta := func(s0, s1 scrape, name string, labels ...string) float64 {
		v0, _ := s0.value(name, labels...)
		return s1.get(t, name, labels...) - v0
	}
	for _, w := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"edgeseal_agent_exports_accepted_total", nil, nAccepted},
		{"edgeseal_agent_exports_rejected_total", []string{"reason", "unknown_workflow"}, nUnknownWF},
		{"edgeseal_agent_exports_rejected_total", []string{"reason", "classification_not_allowed"}, nClass},
		{"edgeseal_agent_exports_rejected_total", []string{"reason", "unauthorized"}, nUnauth},
		{"edgeseal_archive_verifications_total", []string{"result", "refused"}, 1},
		{"edgeseal_archive_alerts_total", []string{"kind", "bundle.rejected", "severity", "warning"}, 1},
	} {
		s0, s1 := before, after
		if w.name[:16] == "edgeseal_archive" {
			s0, s1 = archBefore, archAfter
		}
		if got := delta(s0, s1, w.name, w.labels...); got != w.want {
			t.Errorf("%s%v moved by %v, want %v", w.name, w.labels, got, w.want)
		}
	}
	seals := after.get(t, "edgeseal_agent_seals_total")
	// 290 records of the load at 50 per seal: at least 5 seals.
	if seals-func() float64 { v, _ := before.value("edgeseal_agent_seals_total"); return v }() < 5 {
		t.Errorf("seals %v (before %v), want at least 5 more", seals, before.get(t, "edgeseal_agent_seals_total"))
	}
	if n := after.get(t, "edgeseal_agent_seal_duration_seconds"); n != seals {
		t.Errorf("seal latency histogram has %v samples, %v seals", n, seals)
	}
	if h := after["edgeseal_agent_seal_duration_seconds"].Metric[0].Histogram; h.GetSampleSum() <= 0 {
		t.Errorf("seal latency sum %v", h.GetSampleSum())
	}
	if v := delta(before, after, "edgeseal_agent_journal_records"); v < nAccepted+nUnknownWF+nClass+nUnauth+seals-func() float64 { v, _ := before.value("edgeseal_agent_seals_total"); return v }() {
		t.Errorf("journal grew by %v records", v)
	}
	for _, w := range []struct {
		s     scrape
		name  string
		want  float64
		label []string
	}{
		{after, "edgeseal_agent_outbox_bundles", 0, nil},
		{after, "edgeseal_agent_outbox_oldest_age_seconds", 0, nil},
		{after, "edgeseal_agent_mqtt_connected", 1, nil},
		{after, "edgeseal_agent_receipts_total", seals, nil},
		{after, "edgeseal_agent_archive_rejections_total", 0, nil},
		{after, "edgeseal_agent_seal_failures_total", 0, nil},
		{archAfter, "edgeseal_archive_mqtt_connected", 1, nil},
		{archAfter, "edgeseal_archive_verifications_total", seals, []string{"result", "accepted"}},
		{archAfter, "edgeseal_archive_verifications_total", 0, []string{"result", "error"}},
		{archAfter, "edgeseal_archive_log_entries", seals, nil},
	} {
		if got := w.s.get(t, w.name, w.label...); got != w.want {
			t.Errorf("%s%v = %v, want %v", w.name, w.label, got, w.want)
		}
	}
	if _, ok := after.value("edgeseal_agent_tpm_errors_total"); ok {
		t.Errorf("TPM errors counted with a working TPM")
	}
	t.Logf("agent: %v accepted, %v seals; archive: %v accepted, log %v",
		after.get(t, "edgeseal_agent_exports_accepted_total"), seals,
		archAfter.get(t, "edgeseal_archive_verifications_total", "result", "accepted"), archAfter.get(t, "edgeseal_archive_log_entries"))
	p.stop()
}
