package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"

	"github.com/edgeseal/edgeseal/agent"
	"github.com/edgeseal/edgeseal/agent/config"
)

// cmdAgentRotateKey is `edgeseal agent rotate-key --config FILE --reason
// TEXT`, run with the agent stopped (it opens the journal and the TPM):
// it rotates the signing key now (the old key signs the statement naming
// the new one; key.rotate and key.revoke are journaled) and seals what is
// pending into the outbox, which the agent sends when it starts.
func cmdAgentRotateKey(ctx context.Context, args []string, stdout io.Writer, log *slog.Logger) (err error) {
	fs := flag.NewFlagSet("agent rotate-key", flag.ContinueOnError)
	cfgPath := fs.String("config", "", "the agent's YAML config file (required)")
	reason := fs.String("reason", "", "why, journaled with the rotation (required)")
	if pos, err := parseInterleaved(fs, args); err != nil {
		return err
	} else if len(pos) > 0 {
		return usageErr("agent rotate-key: unexpected argument %q", pos[0])
	}
	if *cfgPath == "" || *reason == "" {
		return usageErr("agent rotate-key: --config and --reason are required")
	}
	cfg, err := config.Load(*cfgPath)
	if err != nil {
		return err
	}
	log = atLevel(log, cfg.Log.SlogLevel())
	st, err := agent.OpenStopped(ctx, cfg, simulatorFor(cfg.TPMInsecureSimulator), log)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := st.Close(); cerr != nil && err == nil {
			err = cerr
		}
	}()
	core, err := agent.Open(ctx, agent.Options{Site: cfg.Site, Device: cfg.Device, SealMaxBytes: int64(cfg.Seal.MaxBundle),
		Logger: log.With("component", "core")}, st.Journal, st.TPM)
	if err != nil {
		return err
	}
	rot, err := core.RotateKey(ctx, *reason)
	if err != nil {
		return err
	}
	n, err := core.SealAll(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "signing key of %s rotated: %s -> %s (key.rotate seq %d, key.revoke seq %d); %d bundles sealed into the outbox\n",
		core.Device(), rot.OldKeyID, rot.NewKeyID, rot.RotateSeq, rot.RevokeSeq, n)
	return nil
}
