package main

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/edgeseal/edgeseal/bundle"
	"github.com/edgeseal/edgeseal/tpm"
)

// TestEnrollPolicyFlags: enroll's --pcr-policy-key and --pcr-policy flags
// and the key file `tpm pcr-key new` writes.
func TestEnrollPolicyFlags(t *testing.T) {
	key := filepath.Join(t.TempDir(), "pcr-key")
	if out, code := runCmd(t, "tpm", "pcr-key", "new", "--out", key); code != 0 {
		t.Fatalf("pcr-key new: exit %d\n%s", code, out)
	}
	pub, err := readPCRPolicyPublic(key + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := readPCRPolicyPublic(key); err == nil {
		t.Fatal("a private key file read as the public key")
	}
	if _, err := enrollPolicy("device:/dev/tpmrm0", "s1/d1", "", ""); err == nil || !strings.Contains(err.Error(), "--pcr-policy-key") {
		t.Fatalf("enroll on a real TPM without a policy: %v", err)
	}
	if p, err := enrollPolicy("device:/dev/tpmrm0", "s1/d1", "", "pcr"); err != nil || p != nil {
		t.Fatalf("--pcr-policy=pcr: %v", err)
	}
	if _, err := enrollPolicy("device:/dev/tpmrm0", "s1/d1", "", "bogus"); err == nil {
		t.Fatal("--pcr-policy=bogus accepted")
	}
	if _, err := enrollPolicy("device:/dev/tpmrm0", "s1/d1", key+".pub", "pcr"); err == nil {
		t.Fatal("both flags accepted")
	}
	p, err := enrollPolicy("device:/dev/tpmrm0", "s1/d1", key+".pub", "")
	if err != nil || !p.Key.Equal(pub) || string(p.Ref) != string(bundle.PCRPolicyRef("s1/d1")) {
		t.Fatalf("--pcr-policy-key: %v", err)
	}
	if p, err := enrollPolicy("simulator:/tmp/x", "s1/d1", "", ""); err != nil || p != nil {
		t.Fatalf("simulator default: %v", err)
	}
}

// TestStartHintPCRPolicy: a data key bound to a PCR-policy key that does
// not unseal under the PCRs now is fixed by authorizing the values now
// (printed), not by `tpm recover`; a data key bound to fixed values is.
func TestStartHintPCRPolicy(t *testing.T) {
	cur := map[int][]byte{0: {0xf1, 0xf1}, 7: {0x07}}
	err := startHint(&tpm.PCRMismatchError{Key: "data", PCRs: []int{0, 7}, Current: cur, Authorized: true})
	msg := err.Error()
	if !errors.As(err, new(*tpm.PCRMismatchError)) || !strings.Contains(msg, "edgeseal tpm authorize-pcrs --key PCR-KEY --device SITE/DEVICE --pcrs 0=f1f1,7=07") ||
		!strings.Contains(msg, "edgeseal agent authorize-pcrs") || strings.Contains(msg, "tpm recover") {
		t.Fatalf("hint for a PCR-policy data key:\n%s", msg)
	}
	msg = startHint(&tpm.PCRMismatchError{Key: "data", PCRs: []int{0}, Current: cur}).Error()
	if !strings.Contains(msg, "edgeseal tpm recover --config AGENT.yaml --recovery-key FILE") || strings.Contains(msg, "authorize-pcrs") {
		t.Fatalf("hint for a data key bound to fixed values:\n%s", msg)
	}
}
