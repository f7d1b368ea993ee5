package sync

import (
	"context"
	"slices"
	"time"
)

// DefaultMaxAlerts is PublisherOptions.MaxAlerts' default.
const DefaultMaxAlerts = 64

// maxAlertTries is how many times one alert is published before it is
// dropped: a broker whose ACL does not grant the alert topic may drop the
// connection on each try (the embedded broker does; Mosquitto 2.0
// acknowledges and discards), which must not go on for ever at the
// expense of the bundles.
const maxAlertTries = 3

// AlertStats counts the device alerts of a Publisher.
type AlertStats struct {
	Queued  int    // waiting for the broker now
	Sent    uint64 // acknowledged by the broker (PUBACK)
	Dropped uint64 // dropped: the queue was full (the oldest goes) or maxAlertTries failed
}

// queuedAlert is one alert waiting for the broker.
type queuedAlert struct {
	id      uint64
	payload []byte
	kind    string
	tries   int
}

// Alert queues a device alert for the device's alert topic
// (DeviceAlertsTopic) at QoS 1; Site and Device are the publisher's,
// whatever a says. It never blocks and never waits for the broker: the
// alert goes out on the publisher's link, beside the bundles, as soon as
// it is up. At most PublisherOptions.MaxAlerts wait; past that the oldest
// is dropped and counted (AlertStats.Dropped). An alert that is not well
// formed is refused with a *DeviceAlertError. An outbox.status report
// (NewOutboxStatus) replaces one still queued and is not queued when the
// queue is full. Alerts are kept in memory
// only: what was not sent when the publisher stops is lost (the journal
// keeps what was journaled).
func (p *Publisher) Alert(a DeviceAlert) error {
	a.Site, a.Device = p.opts.Site, p.opts.Device
	b, err := a.Marshal()
	if err != nil {
		return err
	}
	p.amu.Lock()
	if a.Kind == AlertOutboxStatus {
		// A report replaces the one still waiting, and never takes the
		// place of an alarm: with the queue full it is not queued.
		p.alerts = slices.DeleteFunc(p.alerts, func(q queuedAlert) bool { return q.kind == AlertOutboxStatus })
		if len(p.alerts) >= p.opts.MaxAlerts {
			p.amu.Unlock()
			return nil
		}
	}
	p.alertSeq++
	p.alerts = append(p.alerts, queuedAlert{id: p.alertSeq, payload: b, kind: a.Kind})
	var dropped string
	if len(p.alerts) > p.opts.MaxAlerts {
		dropped = p.alerts[0].kind
		p.alerts[0] = queuedAlert{}
		p.alerts = p.alerts[1:]
		p.astats.Dropped++
	}
	p.amu.Unlock()
	if dropped != "" {
		p.log.Warn("sync: alert queue full; dropped the oldest alert", "kind", dropped, "max", p.opts.MaxAlerts)
	}
	select {
	case p.awake <- struct{}{}:
	default:
	}
	return nil
}

// AlertStats returns a snapshot of the alert counters.
func (p *Publisher) AlertStats() AlertStats {
	p.amu.Lock()
	defer p.amu.Unlock()
	s := p.astats
	s.Queued = len(p.alerts)
	return s
}

// alertLoop publishes the queued alerts, oldest first, on link l until ctx
// is done or the link is lost. It runs beside the session's bundle loop
// and never holds it up.
func (p *Publisher) alertLoop(ctx context.Context, l *link) {
	topic := DeviceAlertsTopic(p.opts.Site, p.opts.Device)
	for {
		p.amu.Lock()
		var next queuedAlert
		if len(p.alerts) > 0 {
			next = p.alerts[0]
		}
		p.amu.Unlock()
		if next.id == 0 {
			select {
			case <-ctx.Done():
				return
			case <-l.lost:
				return
			case <-p.awake:
				continue
			}
		}
		err := waitToken(ctx, l.c.Publish(topic, 1, false, next.payload), l, p.opts.ConnectTimeout)
		if ctx.Err() != nil {
			return
		}
		p.amu.Lock()
		i := p.alertIndex(next.id)
		switch {
		case i < 0: // dropped meanwhile
		case err == nil:
			p.alerts = append(p.alerts[:i], p.alerts[i+1:]...)
			p.astats.Sent++
		default:
			p.alerts[i].tries++
			if p.alerts[i].tries >= maxAlertTries {
				p.alerts = append(p.alerts[:i], p.alerts[i+1:]...)
				p.astats.Dropped++
			}
		}
		p.amu.Unlock()
		if err != nil {
			p.log.Warn("sync: alert not acknowledged by the broker", "topic", topic, "kind", next.kind, "try", next.tries+1, "err", err)
			select { // the link is probably going; wait for it or a tick
			case <-ctx.Done():
				return
			case <-l.lost:
				return
			case <-time.After(p.opts.Tick):
			}
		}
	}
}

// alertIndex is the position of the queued alert id, -1 if gone. Called
// with amu held.
func (p *Publisher) alertIndex(id uint64) int {
	for i, a := range p.alerts {
		if a.id == id {
			return i
		}
	}
	return -1
}
