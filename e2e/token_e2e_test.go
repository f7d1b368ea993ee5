package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestTokenNeverOnArgv: `export --token` and `doctor --token` are usage
// errors that say why (a token on argv is visible to other users), and a
// world-readable or empty --token-file is refused by name.
func TestTokenNeverOnArgv(t *testing.T) {
	needBinary(t)
	dir := t.TempDir()
	csv := filepath.Join(dir, "r.csv")
	if err := os.WriteFile(csv, []byte("a\n1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "none.sock")
	exportArgs := []string{"export", "--socket", sock, "--workflow", "w", "--app", "a"}
	for _, c := range []struct {
		name string
		args []string
	}{
		{"export", append(append([]string{}, exportArgs...), "--token", "secret-on-argv", csv)},
		{"doctor", []string{"doctor", "--config", filepath.Join(dir, "none.yaml"), "--token", "secret-on-argv"}},
	} {
		out, code := cliEnv(t, []string{"EDGESEAL_TOKEN="}, c.args...)
		if code != 2 || !strings.Contains(out, "--token is not accepted") || !strings.Contains(out, "command line") || !strings.Contains(out, "--token-file") {
			t.Errorf("%s --token: exit %d, want 2 with a reason and --token-file named:\n%s", c.name, code, out)
		}
	}

	open := filepath.Join(dir, "open.tok")
	if err := os.WriteFile(open, []byte("tok\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "empty.tok")
	if err := os.WriteFile(empty, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ file, want string }{
		{open, "readable by every user"},
		{empty, "is empty"},
		{filepath.Join(dir, "missing.tok"), "no such file"},
	} {
		out, code := cliEnv(t, nil, append(append([]string{}, exportArgs...), "--token-file", c.file, csv)...)
		if code != 2 || !strings.Contains(out, c.want) || !strings.Contains(out, c.file) {
			t.Errorf("--token-file %s: exit %d, want 2 and %q:\n%s", filepath.Base(c.file), code, c.want, out)
		}
	}

	// A good token file gets past the token: the missing socket fails the
	// call (exit 1), not the usage.
	good := filepath.Join(dir, "good.tok")
	if err := os.WriteFile(good, []byte("tok\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, code := cliEnv(t, nil, append(append([]string{}, exportArgs...), "--token-file", good, csv)...); code != 1 {
		t.Errorf("--token-file with a good file: exit %d, want 1 (no agent):\n%s", code, out)
	}
}
