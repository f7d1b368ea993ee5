package agentd

import (
	"errors"

	"github.com/edgeseal/edgeseal/agent"
	"github.com/edgeseal/edgeseal/tpm"
)

// HintError is an error with what the operator does about it.
type HintError struct {
	Err  error
	Hint string // the way out, one or more lines
}

func (e *HintError) Error() string { return e.Err.Error() + "\n" + e.Hint }
func (e *HintError) Unwrap() error { return e.Err }

// StartHint adds the way out to the errors that stop a device at start
// because its TPM changed (a *HintError); other errors are returned as
// they are.
func StartHint(err error) error {
	var ce *tpm.ClearedError
	var pm *tpm.PCRMismatchError
	switch {
	case errors.As(err, &ce):
		return &HintError{Err: err, Hint: "The journal's data key is gone with the TPM's keys and comes back only from the operator's recovery wrap. " +
			"With the agent stopped run\n  edgeseal tpm recover --config AGENT.yaml --recovery-key FILE\n" +
			"then have the archive operator run\n  edgeseal archive devices rekey SITE/DEVICE --key NEWKEY\n" +
			"with the new trust file it writes (NEWKEY is the key id it prints)."}
	case errors.As(err, &pm) && pm.Key == "data" && pm.Authorized:
		values := "VALUES"
		if pm.Current != nil {
			values = agent.FormatPCRs(pm.PCRs, pm.Current)
		}
		return &HintError{Err: err, Hint: "The keys are bound to the operator's PCR-policy key and the PCRs are not the authorized values " +
			"(a firmware, boot loader or kernel update, or a new board?). If the change is expected, have the operator authorize them:\n" +
			"  edgeseal tpm authorize-pcrs --key PCR-KEY --device SITE/DEVICE --pcrs " + values + " --out pcr-authorization.json\n" +
			"  edgeseal agent authorize-pcrs --config AGENT.yaml pcr-authorization.json\n" +
			"otherwise investigate the boot chain."}
	case errors.As(err, &pm) && pm.Key == "data":
		return &HintError{Err: err, Hint: "The PCRs moved since the data key was sealed (a firmware, boot loader or kernel update?). " +
			"If the change is expected, with the agent stopped run\n  edgeseal tpm recover --config AGENT.yaml --recovery-key FILE\n" +
			"to seal the data key again to the TPM as it is now; otherwise investigate the boot chain."}
	}
	return err
}
