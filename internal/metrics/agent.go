package metrics

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Agent is the agent daemon's metrics. Its methods implement
// agent.Observer; Watch adds what is read at scrape time.
type Agent struct {
	reg        *prometheus.Registry
	accepted   prometheus.Counter
	rejected   *prometheus.CounterVec
	seals      prometheus.Counter
	sealFails  prometheus.Counter
	sealTime   prometheus.Histogram
	tpmErrors  *prometheus.CounterVec
	unjournal  prometheus.Counter
	scrapeWait time.Duration
}

// NewAgent builds the agent's registry and its event metrics.
func NewAgent() *Agent {
	m := &Agent{reg: newRegistry(), scrapeWait: 5 * time.Second}
	m.accepted = prometheus.NewCounter(prometheus.CounterOpts{Namespace: Namespace, Subsystem: "agent",
		Name: "exports_accepted_total", Help: "Exports journaled (a repeated export id is not counted again)."})
	m.rejected = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Subsystem: "agent",
		Name: "exports_rejected_total", Help: "Exports refused and journaled as export.rejected, by reason (policy rule or error code)."},
		[]string{"reason"})
	m.seals = prometheus.NewCounter(prometheus.CounterOpts{Namespace: Namespace, Subsystem: "agent",
		Name: "seals_total", Help: "Seals that wrote a bundle to the outbox."})
	m.sealFails = prometheus.NewCounter(prometheus.CounterOpts{Namespace: Namespace, Subsystem: "agent",
		Name: "seal_failures_total", Help: "Seals that failed."})
	m.sealTime = prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: Namespace, Subsystem: "agent",
		Name: "seal_duration_seconds", Help: "Time to seal: checkpoint, TPM counter, quote and signature, bundle to the outbox.",
		Buckets: []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}})
	m.tpmErrors = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Subsystem: "agent",
		Name: "tpm_errors_total", Help: "Failed TPM commands of seals, by operation (counter, quote, sign)."},
		[]string{"op"})
	m.unjournal = prometheus.NewCounter(prometheus.CounterOpts{Namespace: Namespace, Subsystem: "agent",
		Name: "unauthenticated_unjournaled_total", Help: "Export calls without a valid token refused but not journaled (over the per-second or daily cap)."})
	m.reg.MustRegister(m.accepted, m.rejected, m.seals, m.sealFails, m.sealTime, m.tpmErrors, m.unjournal)
	return m
}

// ExportAccepted implements agent.Observer.
func (m *Agent) ExportAccepted() { m.accepted.Inc() }

// ExportRejected implements agent.Observer.
func (m *Agent) ExportRejected(reason string) { m.rejected.WithLabelValues(reason).Inc() }

// Sealed implements agent.Observer.
func (m *Agent) Sealed(d time.Duration) {
	m.seals.Inc()
	m.sealTime.Observe(d.Seconds())
}

// SealFailed implements agent.Observer.
func (m *Agent) SealFailed() { m.sealFails.Inc() }

// TPMError implements agent.Observer.
func (m *Agent) TPMError(op string) { m.tpmErrors.WithLabelValues(op).Inc() }

// UnauthenticatedUnjournaled counts one export call without a valid token
// refused but not journaled (the API's caps).
func (m *Agent) UnauthenticatedUnjournaled() { m.unjournal.Inc() }

// SyncStats is what the agent's metrics read of the sync publisher.
type SyncStats struct {
	Connected bool
	Receipts  uint64 // verified receipts that removed a bundle from the outbox
	Refusals  uint64 // signed rejections received
}

// AgentSources are read at each scrape.
type AgentSources struct {
	// JournalSize is the number of records in the journal. Required.
	JournalSize func() uint64
	// Outbox returns the bundles waiting and when the oldest was sealed
	// (zero when none or unknown). Required.
	Outbox func(ctx context.Context) (depth int, oldest time.Time, err error)
	// Sync is the publisher's counters; nil when sync is off (the MQTT
	// metrics are then absent).
	Sync func() SyncStats
	// Now is the clock of the outbox age; time.Now when nil.
	Now func() time.Time
	// PolicyRefusals counts signed-policy reloads refused since the
	// start; nil leaves the metric out.
	PolicyRefusals func() uint64
	// GovernanceAlerts counts the governance alerts raised since the
	// start, by kind; nil leaves the metric out.
	GovernanceAlerts func() map[string]uint64
}

// Watch registers the metrics read from src at scrape time. Call it once.
func (m *Agent) Watch(src AgentSources) {
	if src.Now == nil {
		src.Now = time.Now
	}
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: Namespace, Subsystem: "agent",
		Name: "journal_records", Help: "Records in the journal (its size)."},
		func() float64 { return float64(src.JournalSize()) }))
	m.reg.MustRegister(&outboxCollector{src: src.Outbox, now: src.Now, wait: m.scrapeWait})
	if src.PolicyRefusals != nil {
		m.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: Namespace, Subsystem: "agent",
			Name: "policy_reload_refused_total", Help: "Policy reloads refused (not signed by the threshold, invalid); the policy in force stayed."},
			func() float64 { return float64(src.PolicyRefusals()) }))
	}
	if src.GovernanceAlerts != nil {
		m.reg.MustRegister(governanceCollector(src.GovernanceAlerts))
	}
	if src.Sync == nil {
		return
	}
	m.reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: Namespace, Subsystem: "agent",
			Name: "mqtt_connected", Help: "1 while the sync publisher is connected to the broker, else 0."},
			func() float64 { return b2f(src.Sync().Connected) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: Namespace, Subsystem: "agent",
			Name: "receipts_total", Help: "Verified archive receipts that removed a bundle from the outbox."},
			func() float64 { return float64(src.Sync().Receipts) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: Namespace, Subsystem: "agent",
			Name: "archive_rejections_total", Help: "Signed rejections received from the archive (the bundle stays in the outbox)."},
			func() float64 { return float64(src.Sync().Refusals) }),
	)
}

// Handler serves the agent's /metrics.
func (m *Agent) Handler(log *slog.Logger) http.Handler { return handler(m.reg, log) }

// Registry is the agent's registry (for tests and extra collectors).
func (m *Agent) Registry() *prometheus.Registry { return m.reg }

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// outboxCollector reads the outbox once per scrape for both its metrics.
type outboxCollector struct {
	src  func(ctx context.Context) (int, time.Time, error)
	now  func() time.Time
	wait time.Duration
}

var (
	outboxDepthDesc = prometheus.NewDesc(Namespace+"_agent_outbox_bundles",
		"Sealed bundles in the outbox, not yet receipted by the archive.", nil, nil)
	outboxAgeDesc = prometheus.NewDesc(Namespace+"_agent_outbox_oldest_age_seconds",
		"Age of the oldest bundle in the outbox (since its seal); 0 when the outbox is empty.", nil, nil)
)

func (c *outboxCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- outboxDepthDesc
	ch <- outboxAgeDesc
}

func (c *outboxCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), c.wait)
	defer cancel()
	depth, oldest, err := c.src(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(outboxDepthDesc, err)
		return
	}
	age := 0.0
	if depth > 0 && !oldest.IsZero() {
		age = max(0, c.now().Sub(oldest).Seconds())
	}
	ch <- prometheus.MustNewConstMetric(outboxDepthDesc, prometheus.GaugeValue, float64(depth))
	ch <- prometheus.MustNewConstMetric(outboxAgeDesc, prometheus.GaugeValue, age)
}

var governanceDesc = prometheus.NewDesc(Namespace+"_agent_governance_alerts_total",
	"Governance alerts raised since the start (journaled as governance.alert records), by kind.", []string{"kind"}, nil)

// governanceCollector reports the governance alert counts, one series a
// kind raised.
type governanceCollector func() map[string]uint64

func (c governanceCollector) Describe(ch chan<- *prometheus.Desc) { ch <- governanceDesc }

func (c governanceCollector) Collect(ch chan<- prometheus.Metric) {
	for k, n := range c() {
		ch <- prometheus.MustNewConstMetric(governanceDesc, prometheus.CounterValue, float64(n), k)
	}
}
