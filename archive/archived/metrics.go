package archived

import (
	"context"
	"log/slog"

	"github.com/edgeseal/edgeseal/archive"
	"github.com/edgeseal/edgeseal/internal/metrics"
	"github.com/edgeseal/edgeseal/sync"
)

// serveMetrics registers what the archive's metrics read at scrape time
// and serves /metrics on addr. stop closes the server.
func serveMetrics(ctx context.Context, addr string, m *metrics.Archive, a *archive.Archive, sub *sync.Subscriber, log *slog.Logger) (stop func(), err error) {
	m.Watch(metrics.ArchiveSources{
		Stats: func() metrics.ArchiveStats {
			s, ss := a.Stats(), sub.Stats()
			return metrics.ArchiveStats{Accepted: s.Accepted, Duplicates: s.Duplicates, Refused: s.Refused, Held: s.Held, LogSize: a.LogSize(),
				QuarantineDropped: s.QuarantineDropped, AlertsSuppressed: s.AlertsSuppressed, RepliesDropped: ss.RepliesDropped,
				DeviceAlertsDropped: ss.BadAlerts}
		},
		MQTTConnected: func() bool { return sub.Stats().Connected },
	})
	return metrics.Serve(ctx, addr, m.Handler(log), log)
}
