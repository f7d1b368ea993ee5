package agentd

import (
	"context"
	"log/slog"
	"time"

	"github.com/edgeseal/edgeseal/agent"
	"github.com/edgeseal/edgeseal/sync"
)

// OutboxReportEvery is how often the agent reports its outbox to the
// archive (an outbox.status message on its alert topic, docs/formats.md
// "Device alerts") while its sync connection is up.
const OutboxReportEvery = time.Minute

// outboxReportPoll is how often the reporter looks at the connection, so
// that a report goes out soon after it comes up.
const outboxReportPoll = 5 * time.Second

// outboxReporter is what reportOutbox needs of the publisher.
type outboxReporter interface {
	Stats() sync.Stats
	Alert(sync.DeviceAlert) error
}

// reportOutbox queues an outbox.status report (depth and the seal time
// of the oldest bundle) when the sync connection comes up and every
// interval while it stays up, until ctx ends. Reports are not queued
// while the connection is down: the archive would learn only stale ones.
func reportOutbox(ctx context.Context, site, device string, state func(context.Context) (agent.OutboxState, error),
	pub outboxReporter, every time.Duration, now func() time.Time, log *slog.Logger) {
	tick := time.NewTicker(min(every, outboxReportPoll))
	defer tick.Stop()
	var last time.Time // of the last report, zero while the link is down
	failing := false
	for {
		if !pub.Stats().Connected {
			last = time.Time{}
		} else if t := now(); last.IsZero() || t.Sub(last) >= every {
			st, err := state(ctx)
			switch {
			case err != nil && ctx.Err() == nil:
				if !failing {
					log.Warn("outbox report: cannot read the outbox; retrying", "err", err)
				}
				failing = true
			case err == nil:
				if failing {
					log.Info("outbox report: reading the outbox again")
				}
				failing = false
				if err := pub.Alert(sync.NewOutboxStatus(site, device, t, st.Depth, st.Oldest)); err != nil {
					log.Warn("outbox report not queued", "err", err)
				}
				last = t
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}
