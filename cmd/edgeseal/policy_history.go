package main

import (
	"context"
	"flag"
	"io"
	"log/slog"

	"github.com/edgeseal/edgeseal/agent"
	"github.com/edgeseal/edgeseal/agent/config"
	"github.com/edgeseal/edgeseal/agent/policy/signed"
	"github.com/edgeseal/edgeseal/archive"
	"github.com/edgeseal/edgeseal/archive/archived"
	archiveconfig "github.com/edgeseal/edgeseal/archive/config"
	"github.com/edgeseal/edgeseal/bundle"
	"github.com/edgeseal/edgeseal/bundle/custody"
	"github.com/edgeseal/edgeseal/bundle/wire"
)

// cmdPolicyHistory prints each policy version of a device, its signers
// and the schema and workflow changes between versions, from the
// journal of a stopped agent (--config), from bundles, or from the
// bundles an archive stored (--archive-config, --device).
func cmdPolicyHistory(ctx context.Context, args []string, stdout io.Writer) (err error) {
	fs := flag.NewFlagSet("policy history", flag.ContinueOnError)
	cfgPath := fs.String("config", "", "read the journal of this (stopped) agent")
	archiveCfg := fs.String("archive-config", "", "read the bundles stored by the archive of this config (the daemon may run)")
	device := fs.String("device", "", "with --archive-config: the device, SITE/NAME")
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	sources := 0
	for _, set := range []bool{*cfgPath != "", *archiveCfg != "", len(pos) > 0} {
		if set {
			sources++
		}
	}
	if sources != 1 || (*archiveCfg != "") != (*device != "") {
		return usageErr("policy history: want --config AGENT.yaml, --archive-config ARCHIVE.yaml --device SITE/NAME, or BUNDLE...")
	}
	var recs []*custody.Record
	if *archiveCfg != "" {
		if recs, err = archivedRecords(ctx, *archiveCfg, *device); err != nil {
			return err
		}
	} else if *cfgPath != "" {
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

// archivedRecords reads the records of device's bundles from the object
// store of the archive config at path, read-only: it opens no journal, so
// the archive daemon may run.
func archivedRecords(ctx context.Context, path, device string) ([]*custody.Record, error) {
	if err := wire.CheckDevice(device); err != nil {
		return nil, usageErr("policy history: --device %q: %v", device, err)
	}
	cfg, err := archiveconfig.Load(path)
	if err != nil {
		return nil, err
	}
	objs, err := archived.OpenObjectsReadOnly(ctx, cfg)
	if err != nil {
		return nil, err
	}
	var set signed.RecordSet
	err = archive.StoredBundlesOf(ctx, objs, device, bundle.DefaultLimits, func(d [32]byte, b *bundle.Bundle) error {
		return set.Add(b, wire.FormatHash(d))
	})
	if err != nil {
		return nil, err
	}
	return set.Records(), nil
}
