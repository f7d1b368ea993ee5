package main

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"

	"github.com/edgeseal/edgeseal/agent"
	"github.com/edgeseal/edgeseal/bundle/trustfile"
)

// TestEnrollPolicyFlags: enroll's --pcr-policy-key and --pcr-policy flags
// and the key file `tpm pcr-key new` writes.
func TestEnrollPolicyFlags(t *testing.T) {
	key := filepath.Join(t.TempDir(), "pcr-key")
	if out, code := runCmd(t, "tpm", "pcr-key", "new", "--out", key); code != 0 {
		t.Fatalf("pcr-key new: exit %d\n%s", code, out)
	}
	pub, err := agent.ReadPCRPolicyPublic(key + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := agent.ReadPCRPolicyPublic(key); err == nil {
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
	if err != nil || !p.Key.Equal(pub) || string(p.Ref) != string(trustfile.PCRPolicyRef("s1/d1")) {
		t.Fatalf("--pcr-policy-key: %v", err)
	}
	if p, err := enrollPolicy("simulator:/tmp/x", "s1/d1", "", ""); err != nil || p != nil {
		t.Fatalf("simulator default: %v", err)
	}
}

// runCmd runs a command in this process and returns its output and exit
// code; an error follows the output as "error: ...".
func runCmd(t *testing.T, args ...string) (string, int) {
	t.Helper()
	var out bytes.Buffer
	err := run(context.Background(), args, &out, slog.New(slog.DiscardHandler))
	code := 0
	if err != nil {
		code = 1
		var ee *exitError
		if errors.As(err, &ee) {
			code = ee.code
		}
		out.WriteString("error: " + err.Error() + "\n")
	}
	return out.String(), code
}
