package packaging

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// stubs puts fake account, ownership and systemd commands first on PATH.
// Each appends its name and arguments to the returned log file; groupadd
// and useradd also add the entry to $DPKG_ROOT/etc/group or passwd, as the
// real ones do with --prefix (group edgeseal gets gid 990, any other 991).
func stubs(t *testing.T) (path, log string) {
	t.Helper()
	dir := t.TempDir()
	log = filepath.Join(dir, "calls.log")
	stub := `#!/bin/sh
echo "$(basename "$0") $*" >>"` + log + `"
`
	for name, extra := range map[string]string{
		"groupadd": `for a; do g=$a; done
case $g in edgeseal) gid=990 ;; *) gid=991 ;; esac
echo "$g:x:$gid:" >>"$DPKG_ROOT/etc/group"`,
		"useradd":   `echo "edgeseal:x:990:990::/nonexistent:/usr/sbin/nologin" >>"$DPKG_ROOT/etc/passwd"`,
		"usermod":   "",
		"chown":     "",
		"chgrp":     "",
		"systemctl": "",
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(stub+extra+"\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir + string(os.PathListSeparator) + os.Getenv("PATH"), log
}

// runScript runs a maintainer script with sh and the stubs, returning the
// stub calls, one a line.
func runScript(t *testing.T, script, root string, args ...string) []string {
	t.Helper()
	path, log := stubs(t)
	cmd := exec.Command(need(t, "sh"), append([]string{filepath.Join("nfpm", "scripts", script)}, args...)...)
	cmd.Env = append(os.Environ(), "PATH="+path, "DPKG_ROOT="+root)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %v: %v\n%s", script, args, err, out)
	}
	t.Logf("%s %v: %s", script, args, out)
	b, err := os.ReadFile(log)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimSpace(string(b)), "\n")
}

// siteRoot is a root with the package's /etc/edgeseal files and an
// /etc/group that has tss when withTSS.
func siteRoot(t *testing.T, withTSS bool) string {
	t.Helper()
	root := t.TempDir()
	for _, f := range []string{"etc/edgeseal/agent.yaml", "etc/edgeseal/archive.yaml",
		"etc/edgeseal/mosquitto/edgeseal.conf", "etc/edgeseal/mosquitto/edgeseal.acl", "etc/edgeseal/mosquitto/edgeseal-dynsec.json"} {
		p := filepath.Join(root, f)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("x: 1\n"), 0o640); err != nil {
			t.Fatal(err)
		}
	}
	group := "root:x:0:\n"
	if withTSS {
		group += "tss:x:59:\n"
	}
	if err := os.WriteFile(filepath.Join(root, "etc/group"), []byte(group), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "etc/passwd"), []byte("root:x:0:0::/root:/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return root
}

// TestPostinst runs postinst on a DPKG_ROOT with stub account commands:
// first install, re-configure, a root without tss and abort-upgrade.
func TestPostinst(t *testing.T) {
	root := siteRoot(t, true)
	calls := runScript(t, "postinst.sh", root, "configure")
	r := root
	want := []string{
		"groupadd --prefix " + r + " --system edgeseal",
		"useradd --prefix " + r + " --system --gid edgeseal --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin --comment edgeseal daemons edgeseal",
		"groupadd --prefix " + r + " --system edgeseal-api",
		"usermod --prefix " + r + " --append --groups edgeseal-api edgeseal",
		"usermod --prefix " + r + " --append --groups tss edgeseal",
		"chown 0:990 " + r + "/etc/edgeseal",
		"chown 0:990 " + r + "/etc/edgeseal/mosquitto",
		"chgrp 990 " + r + "/etc/edgeseal/agent.yaml",
		"chgrp 990 " + r + "/etc/edgeseal/archive.yaml",
		"chgrp 990 " + r + "/etc/edgeseal/mosquitto/edgeseal.conf",
		"chgrp 990 " + r + "/etc/edgeseal/mosquitto/edgeseal.acl",
		"chgrp 990 " + r + "/etc/edgeseal/mosquitto/edgeseal-dynsec.json",
		"chown 990:990 " + r + "/var/lib/edgeseal",
		"chown 990:990 " + r + "/var/lib/edgeseal-archive",
	}
	if !slices.Equal(calls, want) {
		t.Errorf("postinst configure ran\n  %s\nwant\n  %s", strings.Join(calls, "\n  "), strings.Join(want, "\n  "))
	}
	for dir, mode := range map[string]os.FileMode{
		"etc/edgeseal": 0o750, "etc/edgeseal/mosquitto": 0o750,
		"var/lib/edgeseal": 0o700, "var/lib/edgeseal-archive": 0o700,
	} {
		fi, err := os.Stat(filepath.Join(root, dir))
		if err != nil {
			t.Errorf("%s: %v", dir, err)
		} else if !fi.IsDir() || fi.Mode().Perm() != mode {
			t.Errorf("%s: %s, want a directory %s", dir, fi.Mode(), mode)
		}
	}

	// An upgrade finds the account and only fixes owners and modes.
	calls = runScript(t, "postinst.sh", root, "configure", "0.0.0+1.gold")
	if slices.ContainsFunc(calls, func(c string) bool {
		return strings.HasPrefix(c, "groupadd") || strings.HasPrefix(c, "useradd")
	}) {
		t.Errorf("postinst on an upgrade created the account again: %q", calls)
	}
	if !slices.Contains(calls, "chown 990:990 "+r+"/var/lib/edgeseal") {
		t.Errorf("postinst on an upgrade did not fix the state directory: %q", calls)
	}

	// The API's clients have their own group: /etc/edgeseal (the keys) is
	// never given to it.
	if slices.ContainsFunc(calls, func(c string) bool { return strings.Contains(c, "991") }) {
		t.Errorf("postinst gave something to group edgeseal-api: %q", calls)
	}

	// No tss group: no usermod for tss (postinst warns).
	calls = runScript(t, "postinst.sh", siteRoot(t, false), "configure")
	if slices.ContainsFunc(calls, func(c string) bool { return strings.HasPrefix(c, "usermod") && strings.HasSuffix(c, " tss edgeseal") }) {
		t.Errorf("postinst without a tss group ran usermod: %q", calls)
	}
	if len(calls) < 5 {
		t.Errorf("postinst without a tss group did too little: %q", calls)
	}

	// RPM's %post 1 is a first install too; abort-upgrade does nothing.
	if calls := runScript(t, "postinst.sh", siteRoot(t, true), "1"); len(calls) != len(want) {
		t.Errorf("postinst 1 (rpm install) ran %q", calls)
	}
	if calls := runScript(t, "postinst.sh", siteRoot(t, true), "abort-upgrade", "1.0"); calls[0] != "" {
		t.Errorf("postinst abort-upgrade ran %q", calls)
	}
}

// TestPrermPostrm runs prerm and postrm with a stub systemctl (no
// DPKG_ROOT): removal disables both units and stops them when systemd runs
// here; an upgrade touches nothing.
func TestPrermPostrm(t *testing.T) {
	_, err := os.Stat("/run/systemd/system")
	systemdRuns := err == nil
	units := "edgeseal-agent.service edgeseal-archive.service"
	for _, arg := range []string{"remove", "0"} {
		want := []string{"systemctl --no-reload disable " + units}
		if systemdRuns {
			want = append(want, "systemctl stop "+units)
		}
		if calls := runScript(t, "prerm.sh", "", arg); !slices.Equal(calls, want) {
			t.Errorf("prerm %s ran %q, want %q", arg, calls, want)
		}
	}
	for _, arg := range []string{"upgrade", "1", "deconfigure"} {
		if calls := runScript(t, "prerm.sh", "", arg); calls[0] != "" {
			t.Errorf("prerm %s ran %q, want nothing", arg, calls)
		}
	}
	for _, arg := range []string{"remove", "purge", "0"} {
		calls := runScript(t, "postrm.sh", "", arg)
		if got := calls[0] == "systemctl daemon-reload"; got != systemdRuns || len(calls) != 1 {
			t.Errorf("postrm %s ran %q (systemd running here: %v)", arg, calls, systemdRuns)
		}
	}
	if calls := runScript(t, "postrm.sh", "", "upgrade"); calls[0] != "" {
		t.Errorf("postrm upgrade ran %q, want nothing", calls)
	}
}
