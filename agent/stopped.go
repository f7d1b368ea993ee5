package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"

	"github.com/edgeseal/edgeseal/agent/config"
	"github.com/edgeseal/edgeseal/store"
	"github.com/edgeseal/edgeseal/tpm"
)

// SimulatorOpener opens the in-process TPM simulator for a
// "simulator:DIR" TPM spec (tpm.Options.Simulator). The simulator needs
// cgo, so the command links it in and passes it down; nil when it is not
// linked in.
type SimulatorOpener = func(dir string) (tpm.Transport, error)

// JournalDir is the agent's journal directory, <data_dir>/journal.
func JournalDir(cfg *config.Config) string { return filepath.Join(cfg.DataDir, "journal") }

// OpenTPM opens the agent's TPM as cfg says (spec, state directory,
// PCRs) and, when its keys are bound to an operator's PCR-policy key,
// installs the stored PCR authorization before anything unseals
// (ApplyPCRAuthorization).
func OpenTPM(ctx context.Context, cfg *config.Config, sim SimulatorOpener, log *slog.Logger) (*tpm.TPM, error) {
	t, err := tpm.Open(ctx, cfg.TPM, tpm.Options{StateDir: cfg.TPMStateDir, PCRs: cfg.PCRs, Logger: log.With("component", "tpm"), Simulator: sim})
	if err != nil {
		return nil, err
	}
	if t.Identity().PCRPolicyKey != nil {
		ApplyPCRAuthorization(ctx, cfg, t, log)
	}
	return t, nil
}

// ApplyPCRAuthorization installs the stored PCR authorization
// (LoadPCRAuthorization) when the agent or a command on its stopped
// journal opens the TPM, before the data key is unsealed; a refused one is
// logged and left for the seal loop to report.
func ApplyPCRAuthorization(ctx context.Context, cfg *config.Config, t PCRAuthorizer, log *slog.Logger) {
	a, err := LoadPCRAuthorization(ctx, cfg.TPMStateDir, cfg.DeviceID(), t)
	var pe *PCRAuthError
	switch {
	case errors.As(err, &pe):
		log.Error("PCR AUTHORIZATION NOT APPLIED", "err", err)
	case err != nil:
		log.Error("pcr authorization: cannot install", "err", err)
	}
	if a != nil {
		log.Info("pcr authorization installed", "pcrs", a.PCRSelection.PCRs, "signed", a.Time, "policy_key", a.PolicyKeyID)
	}
}

// JournalOptions tune OpenJournal; the zero value is what the commands on
// a stopped agent's journal use.
type JournalOptions struct {
	MemTableSize  int64        // store.Options.MemTableSize
	ResidentBytes int64        // store.Options.ResidentBytes
	Logger        *slog.Logger // nil: discard
}

// OpenJournal opens the agent's journal (JournalDir) with its data key.
// While the agent daemon runs it fails with store.ErrLocked; a wrong key
// is store.ErrEncryptionKey.
func OpenJournal(ctx context.Context, cfg *config.Config, key []byte, o JournalOptions) (*store.Journal, error) {
	opts := store.Options{Dir: JournalDir(cfg), EncryptionKey: key, MemTableSize: o.MemTableSize, ResidentBytes: o.ResidentBytes}
	if o.Logger != nil {
		opts.Logger = o.Logger.With("component", "store")
	}
	return store.Open(ctx, opts)
}

// Stopped is a stopped agent's TPM and journal, opened by a command that
// works on them (agent rotate-key, bundles export and import-receipts).
type Stopped struct {
	TPM     *tpm.TPM
	Journal *store.Journal
}

// OpenStopped opens a stopped agent's TPM and journal as the daemon does:
// the TPM (OpenTPM), its data key, the journal (OpenJournal; ErrLocked
// while the daemon runs). Close closes both.
func OpenStopped(ctx context.Context, cfg *config.Config, sim SimulatorOpener, log *slog.Logger) (_ *Stopped, err error) {
	t, err := OpenTPM(ctx, cfg, sim, log)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			t.Close()
		}
	}()
	key, err := t.DataKey(ctx)
	if err != nil {
		return nil, fmt.Errorf("agent: data key: %w", err)
	}
	j, err := OpenJournal(ctx, cfg, key, JournalOptions{Logger: log})
	if err != nil {
		return nil, err
	}
	return &Stopped{TPM: t, Journal: j}, nil
}

// Close closes the journal, then the TPM.
func (s *Stopped) Close() error {
	return errors.Join(s.Journal.Close(), s.TPM.Close())
}
