package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/edgeseal/edgeseal/agent"
	"github.com/edgeseal/edgeseal/agent/agentd"
	"github.com/edgeseal/edgeseal/agent/config"
	"github.com/edgeseal/edgeseal/sync/media"
)

// Removable media (package sync/media): `bundles export` writes the outbox
// to a folder, `archive import` answers it in FOLDER/receipts, and
// `bundles import-receipts` brings the answers back.

// cmdBundles dispatches `bundles export` and `bundles import-receipts`.
func cmdBundles(ctx context.Context, args []string, stdout io.Writer, log *slog.Logger) error {
	if len(args) == 0 {
		return usageErr("bundles: want export or import-receipts")
	}
	switch args[0] {
	case "export":
		return cmdBundlesExport(ctx, args[1:], stdout, log)
	case "import-receipts":
		return cmdBundlesImportReceipts(ctx, args[1:], stdout, log)
	}
	return usageErr("bundles: unknown %q: want export or import-receipts", args[0])
}

func loadAgentConfig(fs *flag.FlagSet, cfgPath string) (*config.Config, error) {
	if cfgPath == "" {
		return nil, usageErr("%s: --config is required", fs.Name())
	}
	return config.Load(cfgPath)
}

// cmdBundlesExport writes every pending outbox bundle to DIR and the index
// last (media.Export). It deletes nothing: the outbox is emptied by
// import-receipts.
func cmdBundlesExport(ctx context.Context, args []string, stdout io.Writer, log *slog.Logger) (err error) {
	fs := flag.NewFlagSet("bundles export", flag.ContinueOnError)
	cfgPath := fs.String("config", "", "the agent's YAML config file (required)")
	to := fs.String("to", "", "the folder to write the bundles to (required; created)")
	if pos, err := parseInterleaved(fs, args); err != nil {
		return err
	} else if len(pos) > 0 {
		return usageErr("bundles export: unexpected argument %q", pos[0])
	}
	if *to == "" {
		return usageErr("bundles export: --to DIR is required")
	}
	cfg, err := loadAgentConfig(fs, *cfgPath)
	if err != nil {
		return err
	}
	log = atLevel(log, cfg.Log.SlogLevel())
	log = log.With("device", cfg.DeviceID())
	if err := os.MkdirAll(*to, 0o755); err != nil {
		return fmt.Errorf("bundles export: %w", err)
	}
	j, err := agent.OpenStoppedJournal(ctx, cfg, simulatorFor(cfg.TPMInsecureSimulator), log)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := j.Close(); cerr != nil && err == nil {
			err = cerr
		}
	}()
	_, err = media.Export(ctx, media.ExportOptions{Dir: *to, Device: cfg.DeviceID(), Outbox: j, Out: stdout, Log: log})
	return err
}

// cmdBundlesImportReceipts takes DIR/receipts/*.receipt.json and the
// rejections beside them (media.ImportReceipts) with the stopped agent's
// journal and archive keyring.
func cmdBundlesImportReceipts(ctx context.Context, args []string, stdout io.Writer, log *slog.Logger) (err error) {
	fs := flag.NewFlagSet("bundles import-receipts", flag.ContinueOnError)
	cfgPath := fs.String("config", "", "the agent's YAML config file (required)")
	keyPath := fs.String("archive-key", "", "the archive's Ed25519 public key (PEM); default: the config's sync.archive_key")
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usageErr("bundles import-receipts: want one DIR")
	}
	cfg, err := loadAgentConfig(fs, *cfgPath)
	if err != nil {
		return err
	}
	log = atLevel(log, cfg.Log.SlogLevel())
	if *keyPath == "" {
		*keyPath = cfg.Sync.ArchiveKey
	}
	if *keyPath == "" {
		return usageErr("bundles import-receipts: the archive key is required: --archive-key FILE or sync.archive_key in the config")
	}
	pub, err := agentd.ReadArchiveKey(*keyPath)
	if err != nil {
		return fmt.Errorf("bundles import-receipts: %w", err)
	}
	log = log.With("device", cfg.DeviceID())
	receipts, rejections, err := media.ListReplies(filepath.Join(pos[0], media.ReceiptsDir))
	if err != nil {
		return fmt.Errorf("bundles import-receipts: %w", err)
	}
	j, err := agent.OpenStoppedJournal(ctx, cfg, simulatorFor(cfg.TPMInsecureSimulator), log)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := j.Close(); cerr != nil && err == nil {
			err = cerr
		}
	}()
	rj, err := agent.NewReceiptJournal(agent.Options{Site: cfg.Site, Device: cfg.Device, Logger: log.With("component", "core"), StateDir: cfg.DataDir}, j)
	if err != nil {
		return err
	}
	// An alarm (archive.inconsistent: a receipt of a forked archive log)
	// is said on the output, beside the error that stops the import.
	rj.SetAlarmSink(func(a agent.Alarm) { fmt.Fprintf(stdout, "ALARM %s: %s\n", a.Kind, a.Detail) })
	ring, err := agentd.ImportArchiveKeys(cfg, rj, pub)
	if err != nil {
		return err
	}
	// The content key in use, so that a newer one a receipt carries is
	// learned as over MQTT.
	if err := agentd.UseContentKey(cfg, rj, time.Now(), log); err != nil {
		return err
	}
	sum, err := media.ImportReceipts(ctx, receipts, rejections, media.ImportOptions{
		Outbox:    j,
		Journaled: func(ctx context.Context) (map[string][]byte, error) { return agent.ReadReceipts(ctx, j) },
		JournalReceipt: func(ctx context.Context, id string, receipt []byte) error {
			if err := rj.JournalReceipt(ctx, id, receipt); err != nil {
				return err
			}
			agentd.ImportContentKey(ctx, rj, ring, receipt, log)
			return nil
		},
		Ring:   ring,
		Device: cfg.DeviceID(),
		Out:    stdout,
		Log:    log,
	})
	if err != nil {
		return err
	}
	if sum.Rejected+sum.Bad > 0 {
		return &exitError{code: 1, err: fmt.Errorf("bundles import-receipts: %d rejected, %d bad (entries kept in the outbox)", sum.Rejected, sum.Bad)}
	}
	return nil
}
