package e2e

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/edgeseal/edgeseal/internal/testenv"
)

// setAPIKeys adds lines to the api: section of an agent dir's config.
func setAPIKeys(t *testing.T, a *agentDir, lines string) {
	t.Helper()
	cfgFile := filepath.Join(a.dir, "agent.yaml")
	cfg, err := os.ReadFile(cfgFile)
	if err != nil {
		t.Fatal(err)
	}
	const anchor = "  socket_mode: 0660\n"
	if !strings.Contains(string(cfg), anchor) {
		t.Fatal("harness config has no api.socket_mode line")
	}
	if err := os.WriteFile(cfgFile, []byte(strings.Replace(string(cfg), anchor, anchor+lines, 1)), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestSocketGroup runs the real agent with api.socket_group: its socket
// belongs to that group (the API's clients), not the agent's own group
// (the one that may read /etc/edgeseal); a group that does not exist stops
// the agent with an error naming the key.
func TestSocketGroup(t *testing.T) {
	needAgent(t)
	gid := testenv.OtherGroup(t)
	a := newAgentDir(t, agentOpts{sealEvery: 1000, sealInterval: "1h", maxBody: "64KiB"})
	setAPIKeys(t, a, "  socket_group: \""+strconv.Itoa(gid)+"\"\n")
	p := a.start(t, true)
	fi, err := os.Lstat(a.socket)
	if err != nil {
		t.Fatal(err)
	}
	if got := int(fi.Sys().(*syscall.Stat_t).Gid); got != gid || fi.Mode().Perm() != 0o660 {
		t.Errorf("socket gid %d mode %04o, want gid %d (api.socket_group) mode 0660", got, fi.Mode().Perm(), gid)
	}
	p.stop()

	b := newAgentDir(t, agentOpts{sealEvery: 1000, sealInterval: "1h", maxBody: "64KiB"})
	setAPIKeys(t, b, "  socket_group: no-such-group-es\n")
	out, code := cliEnv(t, nil, "agent", "--config", filepath.Join(b.dir, "agent.yaml"))
	if code == 0 || !strings.Contains(out, "api.socket_group") || !strings.Contains(out, "no-such-group-es") {
		t.Errorf("agent with a missing socket group: exit %d, want a refusal naming api.socket_group:\n%s", code, out)
	}
}
