package archive

import (
	"maps"
	"sync"

	"github.com/edgeseal/edgeseal/bundle/wire"
	edsync "github.com/edgeseal/edgeseal/sync"
)

// Outbox reports: every minute while its sync connection is up, an agent
// reports its outbox (how many bundles wait for their receipt and when
// the oldest was sealed) as an outbox.status message on its alert topic
// (sync.NewOutboxStatus). The archive keeps each device's latest report
// in memory, for the fleet view: it is not an alert, and it is not kept
// across a restart (the next report comes within a minute).

// OutboxStatus is a device's latest outbox report.
type OutboxStatus struct {
	Depth int64 `json:"depth"` // bundles waiting for their receipt
	// Oldest is when the oldest of them was sealed (absent: none, or
	// the agent does not know).
	Oldest string `json:"oldest,omitempty"`
	// AgeSeconds is how long the oldest had waited when the agent
	// reported (Reported minus Oldest, both the agent's clock; 0 when
	// none waits).
	AgeSeconds float64 `json:"ageSeconds"`
	Reported   string  `json:"reported"` // when the agent reported
	Received   string  `json:"received"` // when the archive received it
}

// outboxStatuses are the latest reports by device.
type outboxStatuses struct {
	mu     sync.Mutex
	latest map[string]OutboxStatus
}

// noteOutbox keeps an outbox.status report.
func (a *Archive) noteOutbox(al *edsync.DeviceAlert) {
	if al.Outbox == nil {
		return
	}
	s := OutboxStatus{Depth: al.Outbox.Depth, Oldest: al.Outbox.Oldest, Reported: al.Time, Received: wire.FormatTime(a.now())}
	if al.Outbox.Oldest != "" {
		o, err1 := wire.ParseTime(al.Outbox.Oldest)
		t, err2 := wire.ParseTime(al.Time)
		if err1 == nil && err2 == nil && t.After(o) {
			s.AgeSeconds = t.Sub(o).Seconds()
		}
	}
	dev := al.Site + "/" + al.Device
	ob := &a.outboxes
	ob.mu.Lock()
	defer ob.mu.Unlock()
	if ob.latest == nil {
		ob.latest = map[string]OutboxStatus{}
	}
	if old, ok := ob.latest[dev]; ok && old.Reported > s.Reported {
		return // an older report delivered late
	}
	if _, ok := ob.latest[dev]; !ok && len(ob.latest) >= maxAlertDevices {
		oldest := ""
		for d, r := range ob.latest {
			if oldest == "" || r.Received < ob.latest[oldest].Received {
				oldest = d
			}
		}
		delete(ob.latest, oldest)
	}
	ob.latest[dev] = s
}

// OutboxStatuses returns the latest outbox report of each device that
// reported since the archive started, by device ("<site>/<device>").
func (a *Archive) OutboxStatuses() map[string]OutboxStatus {
	a.outboxes.mu.Lock()
	defer a.outboxes.mu.Unlock()
	return maps.Clone(a.outboxes.latest)
}
