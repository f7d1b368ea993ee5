package archived

import (
	"context"
	"log/slog"

	"github.com/edgeseal/edgeseal/archive"
	"github.com/edgeseal/edgeseal/archive/sqlframes"
	"github.com/edgeseal/edgeseal/internal/metrics"
	"github.com/edgeseal/edgeseal/sync"
)

// serveMetrics registers what the archive's metrics read at scrape time
// and serves /metrics on addr. frames is the subscriber's shared frame
// store (nil: none). stop closes the server.
func serveMetrics(ctx context.Context, addr string, m *metrics.Archive, a *archive.Archive, sub *sync.Subscriber, frames sync.FrameStore, log *slog.Logger) (stop func(), err error) {
	m.Watch(metrics.ArchiveSources{
		Stats: func() metrics.ArchiveStats {
			s, ss := a.Stats(), sub.Stats()
			return metrics.ArchiveStats{Accepted: s.Accepted, Duplicates: s.Duplicates, Refused: s.Refused, Held: s.Held, LogSize: a.LogSize(),
				QuarantineDropped: s.QuarantineDropped, AlertsSuppressed: s.AlertsSuppressed, RepliesDropped: ss.RepliesDropped,
				DeviceAlertsDropped: ss.BadAlerts}
		},
		MQTTConnected: func() bool { return sub.Stats().Connected },
		Frames:        frameStats(frames, func() uint64 { return sub.Stats().FramesLost }),
	})
	return metrics.Serve(ctx, addr, m.Handler(log), log)
}

// frameStats reads the counters of the shared frame store, and the
// frames the subscriber gave up on (lost), for the metrics; nil when
// frames is not one (the subscriber's Assembler).
func frameStats(frames sync.FrameStore, lost func() uint64) func() metrics.FrameStats {
	s, ok := frames.(*sqlframes.Store)
	if !ok || s == nil {
		return nil
	}
	return func() metrics.FrameStats {
		st := s.Stats()
		return metrics.FrameStats{Completed: st.Completed, Evicted: st.Evicted, Expired: st.Expired, Refused: st.Refused,
			Retried: st.Retried, Failed: st.Failed, Lost: lost(), SweepErrors: st.SweepErrors}
	}
}
