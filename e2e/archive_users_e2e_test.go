package e2e

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/edgeseal/edgeseal/archive/api"
	"github.com/edgeseal/edgeseal/internal/testenv"
)

// runStdin runs the binary with stdin and returns stdout+stderr and the
// exit code.
func runStdin(t *testing.T, stdin string, args ...string) (string, int) {
	t.Helper()
	if agentBin == "" {
		testenv.Missing(t, "e2e: no binary: %v", agentBinErr)
	}
	cmd := exec.Command(agentBin, args...)
	cmd.Stdin = strings.NewReader(stdin)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		return out.String(), ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return out.String(), 0
}

// TestArchiveUsersCommands: `edgeseal archive users` adds accounts with
// the password from stdin or a file (never argv), writes the users file
// 0600, lists without hashes, changes passwords, disables, and refuses a
// password file behind a symlink and a group-readable users file.
func TestArchiveUsersCommands(t *testing.T) {
	data := t.TempDir()
	users := filepath.Join(data, "users.json")
	const pw = "correct horse battery staple"
	if out, code := runStdin(t, pw+"\n", "archive", "users", "add", "alice", "--role", "auditor", "--data-dir", data); code != 0 {
		t.Fatalf("add: %d\n%s", code, out)
	}
	pwFile := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(pwFile, []byte(pw+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, code := runStdin(t, "", "archive", "users", "add", "olga", "--role", "operator", "--role", "policy-admin", "--password-file", pwFile, "--data-dir", data); code != 0 {
		t.Fatalf("add from a file: %d\n%s", code, out)
	}
	if fi, err := os.Stat(users); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("users file: %v %v", fi, err)
	}
	if _, err := api.OpenUsers(users).Authenticate("olga", pw); err != nil {
		t.Fatalf("olga's password: %v", err)
	}
	out, code := runStdin(t, "", "archive", "users", "list", "--data-dir", data)
	if code != 0 || !strings.Contains(out, "alice") || !strings.Contains(out, "operator,policy-admin") || strings.Contains(out, "argon2id") {
		t.Fatalf("list: %d\n%s", code, out)
	}
	if out, code := runStdin(t, "another long password\n", "archive", "users", "passwd", "alice", "--data-dir", data); code != 0 {
		t.Fatalf("passwd: %d\n%s", code, out)
	}
	if _, err := api.OpenUsers(users).Authenticate("alice", "another long password"); err != nil {
		t.Fatalf("alice's new password: %v", err)
	}
	if out, code := runStdin(t, "", "archive", "users", "disable", "alice", "--data-dir", data); code != 0 {
		t.Fatalf("disable: %d\n%s", code, out)
	}
	if _, err := api.OpenUsers(users).Authenticate("alice", "another long password"); err == nil {
		t.Fatal("a disabled account signs in")
	}
	for name, args := range map[string][]string{
		"no role":       {"archive", "users", "add", "bob", "--data-dir", data},
		"unknown role":  {"archive", "users", "add", "bob", "--role", "root", "--data-dir", data},
		"short":         {"archive", "users", "add", "bob", "--role", "auditor", "--data-dir", data},
		"password argv": {"archive", "users", "add", "bob", "--role", "auditor", "--password", pw, "--data-dir", data},
	} {
		stdin := "short\n"
		if out, code := runStdin(t, stdin, args...); code == 0 {
			t.Errorf("%s: accepted\n%s", name, out)
		}
	}
	link := filepath.Join(t.TempDir(), "link")
	if err := os.Symlink(pwFile, link); err != nil {
		t.Fatal(err)
	}
	if out, code := runStdin(t, "", "archive", "users", "add", "bob", "--role", "auditor", "--password-file", link, "--data-dir", data); code == 0 {
		t.Errorf("a password file behind a symlink was read\n%s", out)
	}
	if err := os.Chmod(users, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, code := runStdin(t, "", "archive", "users", "list", "--data-dir", data); code == 0 || !strings.Contains(out, "0600") {
		t.Errorf("a world-readable users file was read: %d\n%s", code, out)
	}
}
