package packaging

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/edgeseal/edgeseal/internal/testenv"
)

// TestDpkgInstallRoot installs the amd64 .deb with the real dpkg into an
// empty root (dpkg --root, maintainer scripts run chrootless with
// DPKG_ROOT), then removes and purges it, checking the account, owners and
// modes postinst leaves and what removal keeps.
func TestDpkgInstallRoot(t *testing.T) {
	deb := packages(t).path(t, "deb/amd64")
	dpkg := need(t, "dpkg")
	need(t, "useradd")
	if os.Geteuid() != 0 {
		testenv.Missing(t, "root: dpkg --root needs root to set owners")
	}
	root := t.TempDir()
	for name, data := range map[string]string{
		"var/lib/dpkg/status": "",
		"etc/passwd":          "root:x:0:0:root:/root:/bin/sh\n",
		"etc/shadow":          "root:*::0:::::\n",
		"etc/group":           "root:x:0:\ntss:x:59:\n",
		"etc/gshadow":         "root:*::\ntss:!::\n",
	} {
		write(t, filepath.Join(root, name), data)
	}
	for _, d := range []string{"var/lib/dpkg/info", "var/lib/dpkg/updates"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	run := func(args ...string) {
		t.Helper()
		// passwd (useradd) is a dependency this root lacks: the host's runs.
		args = append([]string{"--root=" + root, "--force-script-chrootless", "--force-depends"}, args...)
		if out, err := exec.Command(dpkg, args...).CombinedOutput(); err != nil {
			t.Fatalf("dpkg %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	run("--install", deb)

	passwd := readFile(t, filepath.Join(root, "etc/passwd"))
	var uid, gid int
	for line := range strings.Lines(passwd) {
		f := strings.Split(strings.TrimSpace(line), ":")
		if f[0] != "edgeseal" {
			continue
		}
		uid, _ = strconv.Atoi(f[2])
		gid, _ = strconv.Atoi(f[3])
		if f[5] != "/nonexistent" || f[6] != "/usr/sbin/nologin" {
			t.Errorf("edgeseal account %q: want home /nonexistent, shell /usr/sbin/nologin", line)
		}
	}
	if uid == 0 || gid == 0 {
		t.Fatalf("postinst made no system user edgeseal:\n%s", passwd)
	}
	if group := readFile(t, filepath.Join(root, "etc/group")); !strings.Contains(group, "\ntss:x:59:edgeseal\n") {
		t.Errorf("edgeseal is not in tss:\n%s", group)
	}
	for path, want := range map[string]struct {
		mode     os.FileMode
		uid, gid int
	}{
		"/usr/bin/edgeseal": {0o755, 0, 0},
		"/usr/lib/systemd/system/edgeseal-agent.service": {0o644, 0, 0},
		"/etc/edgeseal":                                {os.ModeDir | 0o750, 0, gid},
		"/etc/edgeseal/agent.yaml":                     {0o640, 0, gid},
		"/etc/edgeseal/archive.yaml":                   {0o640, 0, gid},
		"/etc/edgeseal/mosquitto":                      {os.ModeDir | 0o750, 0, gid},
		"/etc/edgeseal/mosquitto/edgeseal.conf":        {0o640, 0, gid},
		"/etc/edgeseal/mosquitto/edgeseal.acl":         {0o640, 0, gid},
		"/etc/edgeseal/mosquitto/edgeseal-dynsec.json": {0o640, 0, gid},
		"/var/lib/edgeseal":                            {os.ModeDir | 0o700, uid, gid},
		"/var/lib/edgeseal-archive":                    {os.ModeDir | 0o700, uid, gid},
	} {
		fi, err := os.Stat(filepath.Join(root, path))
		if err != nil {
			t.Errorf("%s: %v", path, err)
			continue
		}
		st := fi.Sys().(*syscall.Stat_t)
		if fi.Mode() != want.mode || int(st.Uid) != want.uid || int(st.Gid) != want.gid {
			t.Errorf("%s: %s %d:%d, want %s %d:%d", path, fi.Mode(), st.Uid, st.Gid, want.mode, want.uid, want.gid)
		}
	}

	// Remove keeps the conffiles and the state; purge deletes the conffiles.
	run("--remove", "edgeseal")
	for path, kept := range map[string]bool{
		"/usr/bin/edgeseal": false, "/usr/lib/systemd/system/edgeseal-agent.service": false,
		"/etc/edgeseal/agent.yaml": true, "/var/lib/edgeseal": true,
	} {
		if _, err := os.Stat(filepath.Join(root, path)); (err == nil) != kept {
			t.Errorf("after dpkg --remove: %s exists: %v, want %v", path, err == nil, kept)
		}
	}
	run("--purge", "edgeseal")
	if _, err := os.Stat(filepath.Join(root, "etc/edgeseal/agent.yaml")); err == nil {
		t.Error("after dpkg --purge: /etc/edgeseal/agent.yaml is still there")
	}
	if _, err := os.Stat(filepath.Join(root, "var/lib/edgeseal")); err != nil {
		t.Errorf("after dpkg --purge: the state directory is gone: %v", err)
	}
}

func write(t *testing.T, path, data string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
