package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/edgeseal/edgeseal/bundle/trustfile"
	"github.com/edgeseal/edgeseal/tpm/attest"
)

// TestPCRKeyAndAuthorizeCLI: `tpm pcr-key new` writes a 0600 private key
// and its public half and never overwrites; `tpm authorize-pcrs` writes a
// statement that verifies under that key for that device, from --pcrs or
// from a tpm2-tools PCR file, and refuses malformed input by name.
func TestPCRKeyAndAuthorizeCLI(t *testing.T) {
	dir := t.TempDir()
	key := filepath.Join(dir, "pcr-key")
	if out, code := runCmd(t, "tpm", "pcr-key", "new", "--out", key); code != 0 || !strings.Contains(out, "keep it offline") {
		t.Fatalf("pcr-key new: exit %d\n%s", code, out)
	}
	fi, err := os.Stat(key)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("private key mode %v: %v", fi.Mode(), err)
	}
	if out, code := runCmd(t, "tpm", "pcr-key", "new", "--out", key); code == 0 || !strings.Contains(out, "not overwriting") {
		t.Fatalf("pcr-key new over an existing key: exit %d\n%s", code, out)
	}
	pub, err := readPCRPolicyPublic(key + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := readPCRPolicyPublic(key); err == nil {
		t.Fatal("a private key file read as the public key")
	}

	vals := "0=" + strings.Repeat("00", 32) + ",2=" + strings.Repeat("22", 32) + ",4=" + strings.Repeat("44", 32) + ",7=" + strings.Repeat("77", 32)
	stmt := filepath.Join(dir, "auth.json")
	if out, code := runCmd(t, "tpm", "authorize-pcrs", "--key", key, "--device", "s1/d1", "--pcrs", vals, "--out", stmt); code != 0 {
		t.Fatalf("authorize-pcrs: exit %d\n%s", code, out)
	}
	raw, _ := os.ReadFile(stmt)
	a, err := trustfile.ParsePCRAuthorization(raw)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Verify(pub, "s1/d1"); err != nil {
		t.Fatalf("statement does not verify: %v", err)
	}
	if a.PCRValues["2"] != strings.Repeat("22", 32) {
		t.Fatalf("values %v", a.PCRValues)
	}

	// The same values from a tpm2-tools PCR file.
	pcrs, values := a.PCRs()
	pf, err := attest.MarshalPCRsFile(pcrs, values)
	if err != nil {
		t.Fatal(err)
	}
	qf := filepath.Join(dir, "quote.pcrs")
	_ = os.WriteFile(qf, pf, 0o644)
	stmt2 := filepath.Join(dir, "auth2.json")
	if out, code := runCmd(t, "tpm", "authorize-pcrs", "--key", key, "--device", "s1/d1", "--from-quote", qf, "--out", stmt2); code != 0 {
		t.Fatalf("authorize-pcrs --from-quote: exit %d\n%s", code, out)
	}
	raw2, _ := os.ReadFile(stmt2)
	if a2, err := trustfile.ParsePCRAuthorization(raw2); err != nil || a2.ApprovedPolicy != a.ApprovedPolicy {
		t.Fatalf("--from-quote statement: %v", err)
	}

	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--key", key, "--device", "s1/d1"}, "one of --pcrs or --from-quote"},
		{[]string{"--key", key, "--device", "s1", "--pcrs", vals}, "device"},
		{[]string{"--key", key, "--device", "s1/d1", "--pcrs", "0=zz"}, "64 hex digits"},
		{[]string{"--key", key, "--device", "s1/d1", "--pcrs", "24=" + strings.Repeat("00", 32)}, "0..23"},
		{[]string{"--key", key, "--device", "s1/d1", "--pcrs", "0=" + strings.Repeat("00", 32) + ",0=" + strings.Repeat("11", 32)}, "twice"},
		{[]string{"--key", key + ".pub", "--device", "s1/d1", "--pcrs", vals}, "PRIVATE KEY"},
	} {
		out, code := runCmd(t, append([]string{"tpm", "authorize-pcrs", "--out", filepath.Join(dir, "x.json")}, c.args...)...)
		if code == 0 || !strings.Contains(out, c.want) {
			t.Errorf("authorize-pcrs %v: exit %d, want an error with %q\n%s", c.args, code, c.want, out)
		}
	}
}
