package main

import (
	"context"
	"flag"
	"io"
	"log/slog"

	"github.com/edgeseal/edgeseal/agent"
	"github.com/edgeseal/edgeseal/agent/config"
	"github.com/edgeseal/edgeseal/agent/policy/signed"
	"github.com/edgeseal/edgeseal/bundle/custody"
)

// cmdPolicyHistory prints each policy version of a device, its signers
// and the schema and workflow changes between versions, from the
// journal of a stopped agent (--config) or from bundles.
func cmdPolicyHistory(ctx context.Context, args []string, stdout io.Writer) (err error) {
	fs := flag.NewFlagSet("policy history", flag.ContinueOnError)
	cfgPath := fs.String("config", "", "read the journal of this (stopped) agent")
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	if (*cfgPath == "") == (len(pos) == 0) {
		return usageErr("policy history: want --config AGENT.yaml or BUNDLE...")
	}
	var recs []*custody.Record
	if *cfgPath != "" {
		cfg, err := config.Load(*cfgPath)
		if err != nil {
			return err
		}
		j, err := agent.OpenStoppedJournal(ctx, cfg, simulatorFor(cfg.TPMInsecureSimulator), slog.New(slog.DiscardHandler))
		if err != nil {
			return err
		}
		defer func() {
			if cerr := j.Close(); cerr != nil && err == nil {
				err = cerr
			}
		}()
		if recs, err = signed.JournalRecords(ctx, j); err != nil {
			return err
		}
	} else if recs, err = signed.BundleRecords(pos); err != nil {
		return err
	}
	versions, err := signed.History(recs)
	if werr := signed.WriteHistory(stdout, versions); werr != nil && err == nil {
		err = werr
	}
	return err
}
