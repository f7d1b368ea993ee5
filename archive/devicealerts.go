package archive

import (
	"context"
	"maps"
	"slices"
	"sync"

	"github.com/edgeseal/edgeseal/bundle/wire"
	edsync "github.com/edgeseal/edgeseal/sync"
)

// MaxDeviceAlerts is how many alerts the archive keeps per device
// (DeviceAlerts), the most recent.
const MaxDeviceAlerts = 16

// maxAlertDevices bounds the devices whose alerts the archive keeps;
// past it the device whose last alert is the oldest is forgotten.
const maxAlertDevices = 4096

// KindDeviceAlertOther is the metric label of a device alert kind the
// agent does not raise (sync.KnownDeviceAlertKinds).
const KindDeviceAlertOther = "other"

// DeviceAlert is an alert a device raised (sync.DeviceAlert) as the
// archive keeps it.
type DeviceAlert struct {
	Device string  `json:"device"` // "<site>/<device>"
	Kind   string  `json:"kind"`
	Time   string  `json:"time"`          // when the device raised it
	Seq    *uint64 `json:"seq,omitempty"` // of its journal record on the device
	Detail string  `json:"detail"`
	// Received is when the archive received it.
	Received string `json:"received"`
}

// deviceAlerts keeps the last alerts of each device and counts them by
// kind.
type deviceAlerts struct {
	mu     sync.Mutex
	recent map[string][]DeviceAlert // by device, oldest first
	counts map[string]uint64        // by metric kind
}

// DeviceAlertKind is kind as a bounded metric label: itself when the
// agent raises it, else KindDeviceAlertOther.
func DeviceAlertKind(kind string) string {
	if slices.Contains(edsync.KnownDeviceAlertKinds, kind) {
		return kind
	}
	return KindDeviceAlertOther
}

// ReceiveDeviceAlert takes an alert a device published on its own alert
// topic (the subscriber checked that the alert names that device); an
// outbox.status report is kept as the device's outbox status instead
// (OutboxStatuses). An alert is
// counted by kind, kept among the device's last MaxDeviceAlerts, and
// logged once per device and kind per quarantine.alert_interval (the
// others are counted in Stats.AlertsSuppressed).
func (a *Archive) ReceiveDeviceAlert(_ context.Context, al *edsync.DeviceAlert) {
	if al.Kind == edsync.AlertOutboxStatus { // a report, not an alarm (outboxstatus.go)
		a.noteOutbox(al)
		return
	}
	now := a.now()
	d := DeviceAlert{Device: al.Site + "/" + al.Device, Kind: al.Kind, Time: al.Time, Seq: al.Seq, Detail: al.Detail, Received: wire.FormatTime(now)}
	da := &a.devAlerts
	da.mu.Lock()
	if da.recent == nil {
		da.recent, da.counts = map[string][]DeviceAlert{}, map[string]uint64{}
	}
	da.counts[DeviceAlertKind(al.Kind)]++
	if _, ok := da.recent[d.Device]; !ok && len(da.recent) >= maxAlertDevices {
		oldest := ""
		for dev, l := range da.recent {
			if oldest == "" || l[len(l)-1].Received < da.recent[oldest][len(da.recent[oldest])-1].Received {
				oldest = dev
			}
		}
		delete(da.recent, oldest)
	}
	l := append(da.recent[d.Device], d)
	if len(l) > MaxDeviceAlerts {
		l = slices.Delete(l, 0, len(l)-MaxDeviceAlerts)
	}
	da.recent[d.Device] = l
	da.mu.Unlock()
	ok, suppressed := a.alerts.allow(Alert{Kind: "device." + al.Kind, Device: d.Device}, now)
	if !ok {
		a.stats.alertsSuppressed.Add(1)
		a.lg.Debug("device alert suppressed (rate limit)", "kind", al.Kind, "device", d.Device)
		return
	}
	a.lg.Warn("DEVICE ALERT "+al.Kind, "device", d.Device, "time", al.Time, "seq", al.Seq, "detail", al.Detail, "suppressed", suppressed)
}

// DeviceAlerts returns the last alerts (at most MaxDeviceAlerts, oldest
// first) of device "<site>/<device>", or of every device when device is
// empty (by device). They are kept in memory since the archive started.
func (a *Archive) DeviceAlerts(device string) map[string][]DeviceAlert {
	da := &a.devAlerts
	da.mu.Lock()
	defer da.mu.Unlock()
	out := map[string][]DeviceAlert{}
	for dev, l := range da.recent {
		if device == "" || dev == device {
			out[dev] = slices.Clone(l)
		}
	}
	return out
}

// DeviceAlertCounts counts the device alerts received since the archive
// started, by kind (DeviceAlertKind).
func (a *Archive) DeviceAlertCounts() map[string]uint64 {
	a.devAlerts.mu.Lock()
	defer a.devAlerts.mu.Unlock()
	return maps.Clone(a.devAlerts.counts)
}
