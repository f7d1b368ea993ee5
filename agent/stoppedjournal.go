package agent

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	"github.com/edgeseal/edgeseal/agent/config"
	"github.com/edgeseal/edgeseal/store"
)

// RunningError is the error of a command on a stopped agent's journal
// while the agent daemon holds it (Journal is its directory).
type RunningError struct{ Journal string }

func (e *RunningError) Error() string {
	return fmt.Sprintf("bundles: the journal %s is locked by a running agent: stop the agent first (systemctl stop edgeseal-agent)", e.Journal)
}

// OpenStoppedJournal opens the journal of a stopped agent as the daemon
// does (OpenStopped: the TPM, the stored PCR authorization, its data key,
// the journal), for a command such as `bundles export`; a running agent
// is a *RunningError. The TPM is closed again before it returns; the
// caller closes the journal.
func OpenStoppedJournal(ctx context.Context, cfg *config.Config, sim SimulatorOpener, log *slog.Logger) (*store.Journal, error) {
	dir := JournalDir(cfg)
	if err := CheckJournalFree(dir); err != nil {
		return nil, err
	}
	st, err := OpenStopped(ctx, cfg, sim, log)
	if err != nil {
		if isLocked(err) {
			return nil, &RunningError{Journal: dir}
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
// the platforms CheckJournalFree cannot probe.
func isLocked(err error) bool {
	return strings.Contains(err.Error(), "Cannot acquire directory lock")
}
