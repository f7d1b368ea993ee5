package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestPolicyCLI: `edgeseal policy keygen` builds a 2-of-2 admin set,
// `policy sign` signs in turn, `policy verify` refuses one signature and
// accepts two, `policy diff` names what changed, and a policy making an
// admin an exporter is refused naming the principal.
func TestPolicyCLI(t *testing.T) {
	needBinary(t)
	dir := t.TempDir()
	in := func(name string) string { return filepath.Join(dir, name) }
	if err := os.MkdirAll(in("schemas"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"invoice-1.json", "common.json"} {
		b, err := os.ReadFile(repoFile("agent", "policy", "testdata", "schemas", f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "schemas", f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(in("policy.yaml"), []byte(e2ePolicy), 0o644); err != nil {
		t.Fatal(err)
	}
	run := func(wantCode int, want string, args ...string) string {
		t.Helper()
		out, code := runCmd(t, args...)
		if code != wantCode || !strings.Contains(out, want) {
			t.Fatalf("edgeseal %v: exit %d (want %d), want %q in:\n%s", args, code, wantCode, want, out)
		}
		return out
	}
	run(0, "added alice", "policy", "keygen", "--out", in("alice.key"), "--name", "alice", "--admins", in("admins.json"), "--threshold", "1")
	run(0, "(2 admins, threshold 2)", "policy", "keygen", "--out", in("bob.key"), "--name", "bob", "--ecdsa", "--admins", in("admins.json"), "--threshold", "2")
	run(1, "exists", "policy", "keygen", "--out", in("bob.key"), "--name", "bob2")
	run(0, "signed", "policy", "sign", "--key", in("alice.key"), in("policy.yaml"), "--out", in("p.json"))
	run(1, "signed by 1 of the 2 admins required", "policy", "verify", "--admins", in("admins.json"), in("p.json"))
	run(0, "ok: policy sha256:", "policy", "verify", "--admins", in("admins.json"), "--threshold", "1", in("p.json"))
	run(0, "signed", "policy", "sign", "--key", in("bob.key"), "--in", in("p.json"), in("policy.yaml"), "--out", in("p.json"))
	run(0, "signed by alice, bob (2 of 2 required)", "policy", "verify", "--admins", in("admins.json"), in("p.json"))
	run(1, "already signed", "policy", "sign", "--key", in("bob.key"), "--in", in("p.json"), in("policy.yaml"), "--out", in("p.json"))

	edited := strings.Replace(e2ePolicy, "max_size: 4096", "max_size: 8192", 1)
	edited = strings.Replace(edited, "principals: [appsmith, n8n-prod]", "principals: [appsmith, n8n-prod, bob]", 1)
	if err := os.WriteFile(in("policy.yaml"), []byte(edited), 0o644); err != nil {
		t.Fatal(err)
	}
	run(0, "workflow invoices-daily changed [max_size]", "policy", "diff", in("p.json"), in("policy.yaml"))
	// The signed file carries the old policy: signing the edited one onto it is refused.
	run(1, "signs another payload", "policy", "sign", "--key", in("alice.key"), "--in", in("p.json"), in("policy.yaml"), "--out", in("p.json"))
	run(0, "signed", "policy", "sign", "--key", in("alice.key"), in("policy.yaml"), "--out", in("p2.json"))
	run(0, "signed", "policy", "sign", "--key", in("bob.key"), "--in", in("p2.json"), in("policy.yaml"), "--out", in("p2.json"))
	run(1, `principal "bob" is a policy admin`, "policy", "verify", "--admins", in("admins.json"), in("p2.json"))
	run(2, "want", "policy", "diff", in("p.json"))
}
