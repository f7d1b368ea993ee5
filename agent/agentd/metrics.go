package agentd

import (
	"context"
	"log/slog"
	"time"

	"github.com/edgeseal/edgeseal/agent"
	"github.com/edgeseal/edgeseal/internal/metrics"
	"github.com/edgeseal/edgeseal/store"
	"github.com/edgeseal/edgeseal/sync"
)

// serveMetrics registers what the agent's metrics read at scrape time
// (journal, outbox, publisher; pub nil when sync is off) and serves
// /metrics on addr. stop closes the server.
func serveMetrics(ctx context.Context, addr string, m *metrics.Agent, j *store.Journal, core *agent.Core, pub *sync.Publisher, log *slog.Logger) (stop func(), err error) {
	src := metrics.AgentSources{
		JournalSize:      j.Size,
		PolicyRefusals:   core.PolicyRefusals,
		GovernanceAlerts: core.GovernanceAlerts,
		Outbox: func(ctx context.Context) (int, time.Time, error) {
			st, err := core.OutboxState(ctx)
			return st.Depth, st.Oldest, err
		},
	}
	if pub != nil {
		src.Sync = func() metrics.SyncStats {
			s, as := pub.Stats(), pub.AlertStats()
			return metrics.SyncStats{Connected: s.Connected, Receipts: s.Delivered, Refusals: s.Rejected, AlertsSent: as.Sent, AlertsDropped: as.Dropped}
		}
	}
	m.Watch(src)
	return metrics.Serve(ctx, addr, m.Handler(log), log)
}
