package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
)

// needBinary fails (CI=true) or skips when the binary was not built.
func needBinary(t *testing.T) {
	t.Helper()
	if agentBinErr == nil && agentBin != "" {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("e2e: no binary: %v (CI=true)", agentBinErr)
	}
	t.Skipf("e2e: no binary: %v", agentBinErr)
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

// helpRun runs the binary with an empty HOME, in a read-only working
// directory and, where strace exists, under strace; it returns stdout,
// stderr, the exit code and the file calls (nil without strace).
func helpRun(t *testing.T, straceBin, home, cwd string, args ...string) (string, string, int, []string) {
	t.Helper()
	name, argv := agentBin, args
	trace := ""
	if straceBin != "" {
		trace = filepath.Join(t.TempDir(), "trace")
		name = straceBin
		argv = append([]string{"-f", "-qq", "-e", "trace=%file", "-o", trace, agentBin}, args...)
	}
	cmd := exec.Command(name, argv...)
	cmd.Dir = cwd
	cmd.Env = []string{"HOME=" + home, "PATH=" + os.Getenv("PATH")}
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
func touched(calls []string, home, cwd string) []string {
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
			strings.Contains(path, "edgeseal") && !strings.HasPrefix(path, filepath.Dir(agentBin)),
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
	home, cwd := t.TempDir(), t.TempDir()
	if err := os.Chmod(cwd, 0o555); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Chmod(cwd, 0o755) })

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
			out, errOut, code, calls := helpRun(t, tr, home, cwd, args...)
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
			if bad := touched(calls, home, cwd); len(bad) > 0 {
				t.Errorf("%v touched the filesystem:\n%s", args, strings.Join(bad, "\n"))
			}
		}
	}
	// Groups list their subcommands.
	for g := range groups {
		out, errOut, code, calls := helpRun(t, straceBin, home, cwd, append(strings.Fields(g), "--help")...)
		if code != 0 {
			t.Errorf("%s --help: exit %d\n%s%s", g, code, out, errOut)
			continue
		}
		for _, p := range paths {
			if strings.HasPrefix(p, g+" ") && !strings.Contains(out, strings.Fields(p)[len(strings.Fields(g))]) {
				t.Errorf("%s --help does not name %q:\n%s", g, p, out)
			}
		}
		if bad := touched(calls, home, cwd); len(bad) > 0 {
			t.Errorf("%s --help touched the filesystem:\n%s", g, strings.Join(bad, "\n"))
		}
	}
	// Defaults are shown.
	out, _, _, _ := helpRun(t, "", home, cwd, "tpm", "enroll", "--help")
	if !strings.Contains(out, `(default "device:/dev/tpmrm0")`) {
		t.Errorf("tpm enroll --help lacks the --tpm default:\n%s", out)
	}
	// --version is version.
	v1, _, c1, _ := helpRun(t, "", home, cwd, "--version")
	v2, _, c2, _ := helpRun(t, "", home, cwd, "version")
	if c1 != 0 || c2 != 0 || v1 != v2 || !strings.HasPrefix(v1, "edgeseal ") {
		t.Errorf("--version exit %d %q, version exit %d %q", c1, v1, c2, v2)
	}
	// Nothing was left behind.
	for _, d := range []string{home, cwd} {
		if ents, _ := os.ReadDir(d); len(ents) > 0 {
			t.Errorf("%s: help left %d entries", d, len(ents))
		}
	}
	// The tracer sees what a command without --help opens.
	if straceBin != "" {
		_, _, code, calls := helpRun(t, straceBin, home, cwd, "archive", "devices", "list")
		if bad := touched(calls, home, cwd); code == 0 || len(bad) == 0 {
			t.Errorf("archive devices list: exit %d, touched nothing seen: the trace check is blind", code)
		}
	}
	// An unknown command is still a usage error.
	if _, _, code, _ := helpRun(t, "", home, cwd, "nonsense", "--help"); code != 2 {
		t.Errorf("nonsense --help: exit %d, want 2", code)
	}
}
