package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"syscall"
	"testing"

	"github.com/edgeseal/edgeseal/internal/testenv"
)

// agentBin is the binary the help test runs, built by needBinary.
var agentBin string

// needBinary builds this command into the test's temporary directory; a
// missing go tool fails the test under CI=true and skips it otherwise.
func needBinary(t *testing.T) {
	t.Helper()
	gobin, err := exec.LookPath("go")
	if err != nil {
		testenv.Missing(t, "go tool: %v", err)
	}
	agentBin = filepath.Join(t.TempDir(), "edgeseal")
	if out, err := exec.Command(gobin, "build", "-o", agentBin, ".").CombinedOutput(); err != nil {
		t.Fatalf("building edgeseal: %v\n%s", err, out)
	}
}

// fileSyscall matches the strace lines of calls that name a path.
var fileSyscall = regexp.MustCompile(`^\d+\s+(\w+)\((?:AT_FDCWD|\d+), "([^"]*)"(.*)$|^\d+\s+(\w+)\("([^"]*)"(.*)$`)

// writeSyscalls change the filesystem whatever their flags.
var writeSyscalls = map[string]bool{
	"mkdir": true, "mkdirat": true, "unlink": true, "unlinkat": true, "rename": true, "renameat": true,
	"renameat2": true, "symlink": true, "symlinkat": true, "link": true, "linkat": true, "chmod": true,
	"fchmodat": true, "fchmodat2": true, "truncate": true, "creat": true, "rmdir": true, "mknod": true,
	"mknodat": true, "chown": true, "fchownat": true, "lchown": true, "utimensat": true,
}

// helpEnv is where the help test runs the binary: an empty HOME and a
// working directory it cannot write (as root, the binary runs as nobody
// from a copy it can read).
type helpEnv struct {
	bin, home, cwd, traces string
	cred                   *syscall.Credential
}

// openDir makes a directory outside t.TempDir (whose parent only root can
// enter) with the given mode.
func openDir(t *testing.T, mode os.FileMode) string {
	t.Helper()
	d, err := os.MkdirTemp("", "edgeseal-help-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Chmod(d, 0o755); os.RemoveAll(d) })
	if err := os.Chmod(d, mode); err != nil {
		t.Fatal(err)
	}
	return d
}

func newHelpEnv(t *testing.T) *helpEnv {
	t.Helper()
	e := &helpEnv{bin: agentBin, home: openDir(t, 0o555), traces: openDir(t, 0o777)}
	if os.Geteuid() == 0 {
		dir := openDir(t, 0o755)
		e.bin = filepath.Join(dir, "edgeseal")
		raw, err := os.ReadFile(agentBin)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(e.bin, raw, 0o755); err != nil {
			t.Fatal(err)
		}
		e.cred = &syscall.Credential{Uid: 65534, Gid: 65534}
	}
	e.cwd = openDir(t, 0o555)
	return e
}

// helpRun runs the binary in e and, where strace exists, under strace; it
// returns stdout, stderr, the exit code and the file calls (nil without
// strace).
func helpRun(t *testing.T, straceBin string, e *helpEnv, args ...string) (string, string, int, []string) {
	t.Helper()
	name, argv := e.bin, args
	trace := ""
	if straceBin != "" {
		f, err := os.CreateTemp(e.traces, "trace-")
		if err != nil {
			t.Fatal(err)
		}
		f.Close()
		os.Chmod(f.Name(), 0o666)
		trace = f.Name()
		name = straceBin
		argv = append([]string{"-f", "-qq", "-e", "trace=%file", "-o", trace, e.bin}, args...)
	}
	cmd := exec.Command(name, argv...)
	cmd.Dir = e.cwd
	cmd.Env = []string{"HOME=" + e.home, "PATH=" + os.Getenv("PATH")}
	if e.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: e.cred}
	}
	var so, se bytes.Buffer
	cmd.Stdout, cmd.Stderr = &so, &se
	err := cmd.Run()
	code := 0
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			t.Fatalf("%v: %v", args, err)
		}
		code = ee.ExitCode()
	}
	var calls []string
	if trace != "" {
		raw, err := os.ReadFile(trace)
		if err != nil {
			t.Fatal(err)
		}
		calls = strings.Split(strings.TrimSpace(string(raw)), "\n")
	}
	return so.String(), se.String(), code, calls
}

// touched returns the file calls that write anything, or that name a path
// of the user, the working directory, edgeseal's own directories or a TPM.
func touched(calls []string, e *helpEnv) []string {
	home, cwd := e.home, e.cwd
	var bad []string
	for _, c := range calls {
		m := fileSyscall.FindStringSubmatch(c)
		if m == nil {
			continue
		}
		call, path, rest := m[1], m[2], m[3]
		if call == "" {
			call, path, rest = m[4], m[5], m[6]
		}
		if call == "execve" {
			continue
		}
		switch {
		case writeSyscalls[call],
			strings.Contains(rest, "O_WRONLY"), strings.Contains(rest, "O_RDWR"), strings.Contains(rest, "O_CREAT"),
			path != "" && !strings.HasPrefix(path, "/"),
			strings.HasPrefix(path, home), strings.HasPrefix(path, cwd),
			strings.Contains(path, "edgeseal") && path != e.bin,
			strings.HasPrefix(path, "/dev/tpm"):
			bad = append(bad, c)
		}
	}
	return bad
}

// Every command and group of the usage text answers --help, -h and
// `help CMD` with exit 0, its usage and every flag its usage line names,
// without opening a config, a TPM or anything in HOME or the working
// directory, and without writing anywhere.
func TestHelpEveryCommand(t *testing.T) {
	needBinary(t)
	straceBin, err := exec.LookPath("strace")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("strace not found (CI=true): scripts/deps.sh test installs it")
		}
		t.Log("strace not found: file access not traced")
		straceBin = ""
	}
	e := newHelpEnv(t)

	entries := parseUsage(usage)
	flags := map[string][]string{}
	groups := map[string]bool{}
	for _, e := range entries {
		flags[e.path] = append(flags[e.path], e.flags...)
		w := strings.Fields(e.path)
		for n := 1; n < len(w); n++ {
			groups[strings.Join(w[:n], " ")] = true
		}
	}
	// The table as the usage text tells it: if this list shrinks, the
	// usage parser lost commands.
	for _, want := range []string{"agent", "agent enroll", "verify", "tpm enroll", "archive devices approve",
		"archive devices revoke-key", "archive devices rekey", "service install", "service status", "bundles import-receipts", "version"} {
		if _, ok := flags[want]; !ok {
			t.Errorf("usage text parsed without %q: %v", want, entries)
		}
	}
	paths := make([]string, 0, len(flags))
	for p := range flags {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	for _, p := range paths {
		words := strings.Fields(p)
		forms := [][]string{
			append(append([]string{}, words...), "--help"),
			append(append([]string{}, words...), "-h"),
			append([]string{"help"}, words...),
		}
		for i, args := range forms {
			tr := straceBin
			if i > 0 {
				tr = "" // one traced form is enough
			}
			out, errOut, code, calls := helpRun(t, tr, e, args...)
			if code != 0 {
				t.Errorf("%v: exit %d, want 0\nstdout:\n%s\nstderr:\n%s", args, code, out, errOut)
				continue
			}
			if !strings.HasPrefix(out, "usage:\n") || !strings.Contains(out, "edgeseal "+words[0]) {
				t.Errorf("%v: no usage of %q:\n%s", args, p, out)
			}
			if flaglessCommands[p] {
				continue // its usage line names top-level flags (--version)
			}
			for _, f := range flags[p] {
				if !regexp.MustCompile(`(?m)^  -` + regexp.QuoteMeta(f) + `( |$)`).MatchString(out) {
					t.Errorf("%v: flag --%s of the usage text not listed:\n%s", args, f, out)
				}
			}
			if bad := touched(calls, e); len(bad) > 0 {
				t.Errorf("%v touched the filesystem:\n%s", args, strings.Join(bad, "\n"))
			}
		}
	}
	// Groups list their subcommands.
	for g := range groups {
		out, errOut, code, calls := helpRun(t, straceBin, e, append(strings.Fields(g), "--help")...)
		if code != 0 {
			t.Errorf("%s --help: exit %d\n%s%s", g, code, out, errOut)
			continue
		}
		for _, p := range paths {
			if strings.HasPrefix(p, g+" ") && !strings.Contains(out, strings.Fields(p)[len(strings.Fields(g))]) {
				t.Errorf("%s --help does not name %q:\n%s", g, p, out)
			}
		}
		if bad := touched(calls, e); len(bad) > 0 {
			t.Errorf("%s --help touched the filesystem:\n%s", g, strings.Join(bad, "\n"))
		}
	}
	// Defaults are shown.
	out, _, _, _ := helpRun(t, "", e, "tpm", "enroll", "--help")
	if !strings.Contains(out, `(default "device:/dev/tpmrm0")`) {
		t.Errorf("tpm enroll --help lacks the --tpm default:\n%s", out)
	}
	// --version is version.
	v1, _, c1, _ := helpRun(t, "", e, "--version")
	v2, _, c2, _ := helpRun(t, "", e, "version")
	if c1 != 0 || c2 != 0 || v1 != v2 || !strings.HasPrefix(v1, "edgeseal ") {
		t.Errorf("--version exit %d %q, version exit %d %q", c1, v1, c2, v2)
	}
	// Nothing was left behind.
	for _, d := range []string{e.home, e.cwd} {
		if ents, _ := os.ReadDir(d); len(ents) > 0 {
			t.Errorf("%s: help left %d entries", d, len(ents))
		}
	}
	// The tracer sees what a command without --help opens.
	if straceBin != "" {
		_, _, code, calls := helpRun(t, straceBin, e, "archive", "devices", "list")
		if bad := touched(calls, e); code == 0 || len(bad) == 0 {
			t.Errorf("archive devices list: exit %d, touched nothing seen: the trace check is blind", code)
		}
	}
	// An unknown command is still a usage error.
	if _, _, code, _ := helpRun(t, "", e, "nonsense", "--help"); code != 2 {
		t.Errorf("nonsense --help: exit %d, want 2", code)
	}
}
