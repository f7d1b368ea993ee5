package agentd

import (
	"errors"
	"strings"
	"testing"

	"github.com/edgeseal/edgeseal/tpm"
)

// TestStartHintPCRPolicy: a data key bound to a PCR-policy key that does
// not unseal under the PCRs now is fixed by authorizing the values now
// (printed), not by `tpm recover`; a data key bound to fixed values is.
func TestStartHintPCRPolicy(t *testing.T) {
	cur := map[int][]byte{0: {0xf1, 0xf1}, 7: {0x07}}
	err := StartHint(&tpm.PCRMismatchError{Key: "data", PCRs: []int{0, 7}, Current: cur, Authorized: true})
	msg := err.Error()
	if !errors.As(err, new(*tpm.PCRMismatchError)) || !strings.Contains(msg, "edgeseal tpm authorize-pcrs --key PCR-KEY --device SITE/DEVICE --pcrs 0=f1f1,7=07") ||
		!strings.Contains(msg, "edgeseal agent authorize-pcrs") || strings.Contains(msg, "tpm recover") {
		t.Fatalf("hint for a PCR-policy data key:\n%s", msg)
	}
	msg = StartHint(&tpm.PCRMismatchError{Key: "data", PCRs: []int{0}, Current: cur}).Error()
	if !strings.Contains(msg, "edgeseal tpm recover --config AGENT.yaml --recovery-key FILE") || strings.Contains(msg, "authorize-pcrs") {
		t.Fatalf("hint for a data key bound to fixed values:\n%s", msg)
	}
}
