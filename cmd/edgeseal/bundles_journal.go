package main

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"

	"github.com/edgeseal/edgeseal/agent/config"
	"github.com/edgeseal/edgeseal/store"
	"github.com/edgeseal/edgeseal/tpm"
)

// agentRunningError: the agent daemon holds the journal.
type agentRunningError struct{ Journal string }

func (e *agentRunningError) Error() string {
	return fmt.Sprintf("bundles: the journal %s is locked by a running agent: stop the agent first (systemctl stop edgeseal-agent)", e.Journal)
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
