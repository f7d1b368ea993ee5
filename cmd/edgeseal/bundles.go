package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/edgeseal/edgeseal/agent"
	"github.com/edgeseal/edgeseal/agent/config"
	"github.com/edgeseal/edgeseal/store"
	"github.com/edgeseal/edgeseal/sync/media"
	"github.com/edgeseal/edgeseal/tpm"
)

// Removable media (package sync/media): `bundles export` writes the outbox
// to a folder, `archive import` answers it in FOLDER/receipts, and
// `bundles import-receipts` brings the answers back.

// agentRunningError: the agent daemon holds the journal.
type agentRunningError struct{ Journal string }

func (e *agentRunningError) Error() string {
	return fmt.Sprintf("bundles: the journal %s is locked by a running agent: stop the agent first (systemctl stop edgeseal-agent)", e.Journal)
}

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

// openStoppedJournal opens the journal of a stopped agent as the daemon
// does: the TPM, the stored PCR authorization (keys bound to a PCR-policy
// key), its data key, the journal. The TPM is closed again before
// it returns; close closes the journal.
func openStoppedJournal(ctx context.Context, cfg *config.Config, log *slog.Logger) (*store.Journal, error) {
	dir := filepath.Join(cfg.DataDir, "journal")
	if err := checkJournalFree(dir); err != nil {
		return nil, err
	}
	t, err := tpm.Open(ctx, cfg.TPM, tpm.Options{StateDir: cfg.TPMStateDir, PCRs: cfg.PCRs, Logger: log.With("component", "tpm"), Simulator: simulatorFor(cfg.TPMInsecureSimulator)})
	if err != nil {
		return nil, err
	}
	if t.Identity().PCRPolicyKey != nil {
		loadPCRAuthorization(ctx, cfg, t, log)
	}
	key, err := t.DataKey(ctx)
	if cerr := t.Close(); cerr != nil && err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("bundles: data key: %w", err)
	}
	j, err := store.Open(ctx, store.Options{Dir: dir, EncryptionKey: key, Logger: log.With("component", "store")})
	if err != nil {
		if isLocked(err) {
			return nil, &agentRunningError{Journal: dir}
		}
		return nil, err
	}
	return j, nil
}

// isLocked reports Badger's directory lock error (a running agent), for
// the platforms checkJournalFree cannot probe.
func isLocked(err error) bool {
	return strings.Contains(err.Error(), "Cannot acquire directory lock")
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
	log = log.With("device", cfg.DeviceID())
	if err := os.MkdirAll(*to, 0o755); err != nil {
		return fmt.Errorf("bundles export: %w", err)
	}
	j, err := openStoppedJournal(ctx, cfg, log)
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
	if *keyPath == "" {
		*keyPath = cfg.Sync.ArchiveKey
	}
	if *keyPath == "" {
		return usageErr("bundles import-receipts: the archive key is required: --archive-key FILE or sync.archive_key in the config")
	}
	pub, err := readEd25519Public(*keyPath)
	if err != nil {
		return err
	}
	log = log.With("device", cfg.DeviceID())
	receipts, rejections, err := media.ListReplies(filepath.Join(pos[0], media.ReceiptsDir))
	if err != nil {
		return fmt.Errorf("bundles import-receipts: %w", err)
	}
	j, err := openStoppedJournal(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := j.Close(); cerr != nil && err == nil {
			err = cerr
		}
	}()
	rj, err := agent.NewReceiptJournal(agent.Options{Site: cfg.Site, Device: cfg.Device, Logger: log.With("component", "core")}, j)
	if err != nil {
		return err
	}
	ring, err := importArchiveKeys(cfg, rj, pub)
	if err != nil {
		return err
	}
	sum, err := media.ImportReceipts(ctx, receipts, rejections, media.ImportOptions{
		Outbox:         j,
		Journaled:      func(ctx context.Context) (map[string][]byte, error) { return agent.ReadReceipts(ctx, j) },
		JournalReceipt: rj.JournalReceipt,
		Ring:           ring,
		Device:         cfg.DeviceID(),
		Out:            stdout,
		Log:            log,
	})
	if err != nil {
		return err
	}
	if sum.Rejected+sum.Bad > 0 {
		return &exitError{code: 1, err: fmt.Errorf("bundles import-receipts: %d rejected, %d bad (entries kept in the outbox)", sum.Rejected, sum.Bad)}
	}
	return nil
}
