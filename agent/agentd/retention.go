package agentd

import (
	"context"
	"log/slog"
	"time"

	"github.com/edgeseal/edgeseal/agent"
	"github.com/edgeseal/edgeseal/agent/spool"
)

// retentionEvery is how often the local retention pass runs for keep: a
// 24th of it, between 1 s and 1 h.
func retentionEvery(keep time.Duration) time.Duration {
	return min(max(keep/24, time.Second), time.Hour)
}

// runLocalRetention purges, until ctx ends, the payloads of exports older
// than keep that the archive receipted, and their copies in the spool's
// done/ folder (spoolDir "" when there is no spool). The first pass runs
// at once: it also finishes a purge a crash interrupted.
func runLocalRetention(ctx context.Context, core *agent.Core, keep time.Duration, spoolDir string, log *slog.Logger) {
	t := time.NewTicker(retentionEvery(keep))
	defer t.Stop()
	for {
		res, err := core.PurgeLocal(ctx, keep)
		switch {
		case err != nil && ctx.Err() == nil:
			log.Error("local retention pass failed", "err", err)
		case err == nil && len(res.Payloads) > 0 && spoolDir != "":
			ds := map[string]bool{}
			for _, d := range res.Payloads {
				ds[d] = true
			}
			n, err := spool.PurgeDone(spoolDir, ds)
			if err != nil {
				log.Error("local retention: spool done/ copies", "err", err)
			}
			if n > 0 {
				log.Info("local retention: spool done/ copies removed", "files", n)
			}
		}
		if err == nil && len(res.Payloads) >= agent.MaxPurgePayloads && ctx.Err() == nil {
			continue // a backlog: the next pass at once
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
