package doctor

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/edgeseal/edgeseal/agent"
	"github.com/edgeseal/edgeseal/tpm"
	"github.com/edgeseal/edgeseal/tpm/recovery"
)

// recoverFix is what to do when the TPM no longer holds the device's keys.
const recoverFix = "with the agent stopped: edgeseal tpm recover --config AGENT.yaml --recovery-key FILE, then at the archive: edgeseal archive devices rekey SITE/DEVICE --key NEWKEY"

// tpmOpenFix is the fix for a failed open of the TPM, by what failed.
func tpmOpenFix(err error, stateDir string) string {
	var ce *tpm.ClearedError
	if errors.As(err, &ce) {
		return recoverFix
	}
	return "check that the TPM device exists (ls -l /dev/tpmrm0), that the agent's user is in group tss, and that " + stateDir + " is the state of this TPM"
}

// checkRecoveryWrap warns when the data key has no recovery wrap (a TPM
// clear or board swap would then lose the journal) and fails when the
// wrap is unreadable or another device's.
func (d *Doctor) checkRecoveryWrap() {
	cfg := d.cfg
	p := filepath.Join(cfg.TPMStateDir, recovery.FileName)
	fix := "edgeseal tpm rewrap --config AGENT.yaml --recovery-key RECOVERY.pub (make the key pair with: edgeseal tpm recovery-keygen --out RECOVERY.key)"
	b, err := agent.ReadRecoveryFile(p)
	if errors.Is(err, os.ErrNotExist) {
		d.Report(LevelWarn, "recovery", "no recovery wrap of the data key in "+cfg.TPMStateDir+": a TPM clear or board swap would lose the journal", fix)
		return
	}
	if err != nil {
		d.Report(LevelFail, "recovery", err.Error(), fix)
		return
	}
	w, err := recovery.Parse(b)
	if err != nil {
		d.Report(LevelFail, "recovery", fmt.Sprintf("%s: %v", p, err), fix)
		return
	}
	if w.Device != cfg.DeviceID() {
		d.Report(LevelFail, "recovery", fmt.Sprintf("%s is the wrap of device %s, not %s", p, w.Device, cfg.DeviceID()), fix)
		return
	}
	d.Report(LevelOK, "recovery", "data key wrapped to recovery key "+w.RecoveryKeyID, "")
}
