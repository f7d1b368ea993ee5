package metrics

import (
	"log/slog"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
)

// Archive is the archive daemon's metrics: alerts and processing errors
// counted as they happen, the rest read at scrape time (Watch).
type Archive struct {
	reg       *prometheus.Registry
	alerts    *prometheus.CounterVec
	devAlerts *prometheus.CounterVec
	failed    prometheus.Counter
	verifyOpt prometheus.CounterOpts
}

// NewArchive builds the archive's registry and its event metrics.
func NewArchive() *Archive {
	m := &Archive{reg: newRegistry()}
	m.alerts = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Subsystem: "archive",
		Name: "alerts_total", Help: "Alerts raised (published on edgeseal/v1/alerts), by kind and severity."},
		[]string{"kind", "severity"})
	m.devAlerts = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Subsystem: "archive",
		Name: "device_alerts_total", Help: "Alerts devices published on their alert topics (edgeseal/v1/alerts/<site>/<device>), by kind (\"other\" for a kind the agent does not raise)."},
		[]string{"kind"})
	m.verifyOpt = prometheus.CounterOpts{Namespace: Namespace, Subsystem: "archive",
		Name: "verifications_total", Help: "Bundles received and verified, by result: accepted, duplicate (answered with the stored receipt), refused (quarantined), held (answered before its predecessor was committed by another replica; sent again), error (not processed; delivered again later)."}
	o := m.verifyOpt
	o.ConstLabels = prometheus.Labels{"result": "error"}
	m.failed = prometheus.NewCounter(o)
	m.reg.MustRegister(m.alerts, m.devAlerts, m.failed)
	return m
}

// Alert counts one alert.
func (m *Archive) Alert(kind, severity string) { m.alerts.WithLabelValues(kind, severity).Inc() }

// DeviceAlert counts one device alert; kind must be a bounded label
// (archive.DeviceAlertKind).
func (m *Archive) DeviceAlert(kind string) { m.devAlerts.WithLabelValues(kind).Inc() }

// ProcessError counts one bundle that could not be processed (no reply).
func (m *Archive) ProcessError() { m.failed.Inc() }

// ArchiveStats is what the metrics read of the archive.
type ArchiveStats struct {
	Accepted, Duplicates, Refused, Held uint64
	LogSize                             uint64
	// QuarantineDropped, AlertsSuppressed and RepliesDropped are what the
	// archive's bounds dropped: quarantine entries past the quotas, alerts
	// past the rate limit, replies past the ones waiting for the broker.
	QuarantineDropped, AlertsSuppressed, RepliesDropped uint64
	// DeviceAlertsDropped counts device alerts the subscriber dropped:
	// too large, not well formed, or naming another device than their
	// topic's.
	DeviceAlertsDropped uint64
}

// FrameStats is what the metrics read of the shared frame store, where
// replicas join the frames of multi-frame bundles (archive/sqlframes).
type FrameStats struct {
	// Completed counts bundles joined; Evicted and Expired, partial
	// bundles dropped for room and by age; Refused, frames refused.
	Completed, Evicted, Expired, Refused uint64
	// Retried counts transactions retried after a lock conflict;
	// Failed, Adds that failed otherwise (each of the subscriber's
	// tries of a frame); Lost, frames given up on after the subscriber's
	// tries (acknowledged all the same: the agent sends their bundle
	// again).
	Retried, Failed, Lost uint64
	// SweepErrors counts sweeps of aged partials that failed.
	SweepErrors uint64
}

// ArchiveSources are read at each scrape.
type ArchiveSources struct {
	Stats func() ArchiveStats // required
	// MQTTConnected reports the subscriber's link; nil: absent.
	MQTTConnected func() bool
	// Frames reads the shared frame store's counters; nil: absent (the
	// subscriber joins frames in memory).
	Frames func() FrameStats
}

// Watch registers the metrics read from src at scrape time. Call it once.
func (m *Archive) Watch(src ArchiveSources) {
	for _, r := range []struct {
		result string
		get    func(ArchiveStats) uint64
	}{
		{"accepted", func(s ArchiveStats) uint64 { return s.Accepted }},
		{"duplicate", func(s ArchiveStats) uint64 { return s.Duplicates }},
		{"refused", func(s ArchiveStats) uint64 { return s.Refused }},
		{"held", func(s ArchiveStats) uint64 { return s.Held }},
	} {
		o := m.verifyOpt
		o.ConstLabels = prometheus.Labels{"result": r.result}
		m.reg.MustRegister(prometheus.NewCounterFunc(o, func() float64 { return float64(r.get(src.Stats())) }))
	}
	for _, c := range []struct {
		name, help string
		get        func(ArchiveStats) uint64
	}{
		{"quarantine_dropped_total", "Quarantine entries dropped, oldest first, past the quarantine quotas.", func(s ArchiveStats) uint64 { return s.QuarantineDropped }},
		{"alerts_suppressed_total", "Alerts not raised: one per device and reason per quarantine.alert_interval.", func(s ArchiveStats) uint64 { return s.AlertsSuppressed }},
		{"device_alerts_dropped_total", "Device alerts dropped: too large, not well formed, or naming another device than their topic's.", func(s ArchiveStats) uint64 { return s.DeviceAlertsDropped }},
		{"replies_dropped_total", "Replies not published because too many waited for the broker (the agent sends the bundle again).", func(s ArchiveStats) uint64 { return s.RepliesDropped }},
	} {
		m.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: Namespace, Subsystem: "archive", Name: c.name, Help: c.help},
			func() float64 { return float64(c.get(src.Stats())) }))
	}
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: Namespace, Subsystem: "archive",
		Name: "log_entries", Help: "Entries in the archive's transparency log."},
		func() float64 { return float64(src.Stats().LogSize) }))
	if src.Frames != nil {
		watchFrames(m.reg, src.Frames)
	}
	if src.MQTTConnected != nil {
		m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: Namespace, Subsystem: "archive",
			Name: "mqtt_connected", Help: "1 while the archive's subscriber is connected to the broker, else 0."},
			func() float64 { return b2f(src.MQTTConnected()) }))
	}
}

// watchFrames registers the shared frame store's counters.
func watchFrames(reg *prometheus.Registry, frames func() FrameStats) {
	for _, c := range []struct {
		name, help string
		get        func(FrameStats) uint64
	}{
		{"frames_completed_total", "Multi-frame bundles joined in the shared frame store by this archive.", func(s FrameStats) uint64 { return s.Completed }},
		{"frames_evicted_total", "Partial bundles dropped from the shared frame store to make room for their device's newer ones.", func(s FrameStats) uint64 { return s.Evicted }},
		{"frames_expired_total", "Partial bundles dropped from the shared frame store after no frame came for their time to live.", func(s FrameStats) uint64 { return s.Expired }},
		{"frames_refused_total", "Frames the shared frame store refused (not well formed, disagreeing with their bundle, past a bound).", func(s FrameStats) uint64 { return s.Refused }},
		{"frames_retried_total", "Frame store transactions retried after a deadlock or lock wait timeout.", func(s FrameStats) uint64 { return s.Retried }},
		{"frames_failed_total", "Frames the shared frame store failed to keep at one try (the database unreachable, a lock conflict past the retries); the subscriber tries a frame a few times.", func(s FrameStats) uint64 { return s.Failed }},
		{"frames_lost_total", "Frames given up on after the subscriber's tries; acknowledged all the same, their bundle comes again when the agent sends it again.", func(s FrameStats) uint64 { return s.Lost }},
		{"frames_sweep_errors_total", "Sweeps of aged partial bundles in the shared frame store that failed.", func(s FrameStats) uint64 { return s.SweepErrors }},
	} {
		reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: Namespace, Subsystem: "archive", Name: c.name, Help: c.help},
			func() float64 { return float64(c.get(frames())) }))
	}
}

// Handler serves the archive's /metrics.
func (m *Archive) Handler(log *slog.Logger) http.Handler { return handler(m.reg, log) }

// Registry is the archive's registry.
func (m *Archive) Registry() *prometheus.Registry { return m.reg }
