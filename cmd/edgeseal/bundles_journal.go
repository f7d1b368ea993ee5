package main

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	"github.com/edgeseal/edgeseal/agent"
	"github.com/edgeseal/edgeseal/agent/config"
	"github.com/edgeseal/edgeseal/store"
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
	dir := agent.JournalDir(cfg)
	if err := checkJournalFree(dir); err != nil {
		return nil, err
	}
	st, err := agent.OpenStopped(ctx, cfg, simulatorFor(cfg.TPMInsecureSimulator), log)
	if err != nil {
		if isLocked(err) {
			return nil, &agentRunningError{Journal: dir}
		}
		return nil, err
	}
	// The TPM is needed only for the data key.
	if err := st.TPM.Close(); err != nil {
		st.Journal.Close()
		return nil, err
	}
	return st.Journal, nil
}

// isLocked reports Badger's directory lock error (a running agent), for
// the platforms checkJournalFree cannot probe.
func isLocked(err error) bool {
	return strings.Contains(err.Error(), "Cannot acquire directory lock")
}
