package main

import (
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"log/slog"

	"github.com/edgeseal/edgeseal/agent/agentd"
	agentconfig "github.com/edgeseal/edgeseal/agent/config"
	"github.com/edgeseal/edgeseal/archive"
	"github.com/edgeseal/edgeseal/archive/archived"
	"github.com/edgeseal/edgeseal/archive/broker"
	"github.com/edgeseal/edgeseal/archive/config"
)

// The system tests of this package start daemons in-process under the
// names the command used before the daemons moved to agent/agentd and
// archive/archived. These are those names, for those tests only.

type archiveHooks struct {
	ready func(a *archive.Archive, b *broker.Broker)
}

func runArchive(ctx context.Context, cfg *config.Config, log *slog.Logger, hooks *archiveHooks) error {
	o := archived.Options{Logger: log}
	if hooks != nil {
		o.Ready = hooks.ready
	}
	return archived.Run(ctx, cfg, o)
}

func readEd25519Public(path string) (ed25519.PublicKey, error) { return agentd.ReadArchiveKey(path) }

func syncTLS(s agentconfig.Sync) (*tls.Config, error) { return agentd.SyncTLS(s) }
