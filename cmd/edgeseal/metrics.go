package main

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/edgeseal/edgeseal/agent"
	"github.com/edgeseal/edgeseal/archive"
	"github.com/edgeseal/edgeseal/internal/metrics"
	"github.com/edgeseal/edgeseal/store"
	"github.com/edgeseal/edgeseal/sync"
)

// metricsShutdown bounds the wait for scrapes in flight on stop.
const metricsShutdown = 5 * time.Second

// serveAgentMetrics registers what the agent's metrics read at scrape
// time (journal, outbox, publisher; pub nil when sync is off) and serves
// /metrics on addr. stop closes the server.
func serveAgentMetrics(ctx context.Context, addr string, m *metrics.Agent, j *store.Journal, core *agent.Core, pub *sync.Publisher, log *slog.Logger) (stop func(), err error) {
	src := metrics.AgentSources{
		JournalSize: j.Size,
		Outbox: func(ctx context.Context) (int, time.Time, error) {
			st, err := core.OutboxState(ctx)
			return st.Depth, st.Oldest, err
		},
	}
	if pub != nil {
		src.Sync = func() metrics.SyncStats {
			s := pub.Stats()
			return metrics.SyncStats{Connected: s.Connected, Receipts: s.Delivered, Refusals: s.Rejected}
		}
	}
	m.Watch(src)
	return startMetrics(ctx, addr, m.Handler(log), log)
}

// serveArchiveMetrics registers what the archive's metrics read at scrape
// time and serves /metrics on addr.
func serveArchiveMetrics(ctx context.Context, addr string, m *metrics.Archive, a *archive.Archive, sub *sync.Subscriber, log *slog.Logger) (stop func(), err error) {
	m.Watch(metrics.ArchiveSources{
		Stats: func() metrics.ArchiveStats {
			s := a.Stats()
			return metrics.ArchiveStats{Accepted: s.Accepted, Duplicates: s.Duplicates, Refused: s.Refused, LogSize: a.LogSize(),
				QuarantineDropped: s.QuarantineDropped, AlertsSuppressed: s.AlertsSuppressed, RepliesDropped: sub.Stats().RepliesDropped}
		},
		MQTTConnected: func() bool { return sub.Stats().Connected },
	})
	return startMetrics(ctx, addr, m.Handler(log), log)
}

// startMetrics serves h on addr until the returned stop is called.
func startMetrics(ctx context.Context, addr string, h http.Handler, log *slog.Logger) (func(), error) {
	srv, err := metrics.Start(ctx, addr, h, log)
	if err != nil {
		return nil, err
	}
	return func() {
		sctx, cancel := context.WithTimeout(context.Background(), metricsShutdown)
		defer cancel()
		if err := srv.Close(sctx); err != nil {
			log.Warn("metrics: stop", "err", err)
		}
	}, nil
}
