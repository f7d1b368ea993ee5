package e2e

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/edgeseal/edgeseal/internal/testenv"
)

// fault is one failure below the process: strace (Debian's strace, with
// -e inject) attached to a running daemon makes the chosen system calls
// fail with errno. strace counts calls per thread, so When=N fails the
// N-th matching call of whichever thread gets there (Plus: that call and
// every later one) until the injector detaches. Paths (strace -P) keep
// the injection to calls on those files or directories (a descriptor's
// path counts, so a directory's path also catches the fsync of the
// directory and the *at calls relative to it); msync names no file and
// is never path-filtered.
type fault struct {
	Name     string   // what the test calls it
	Target   string   // "agent" or "archive"
	Syscalls []string // fsync, fdatasync, msync, write, pwrite64, rename, renameat, linkat, openat, ...
	Errno    string   // EIO, ENOSPC, EROFS
	When     int      // the N-th call of a thread fails
	Plus     bool     // and every later one
	Paths    []string // strace -P; empty: every call
	// Fatal: the daemon must stop with a non-zero status once a call
	// failed (a journal commit); otherwise it must answer with errors and
	// keep running.
	Fatal bool
}

func (f fault) String() string {
	when := strconv.Itoa(f.When)
	if f.Plus {
		when += "+"
	}
	s := fmt.Sprintf("%s: %s %s=%s when=%s", f.Name, f.Target, strings.Join(f.Syscalls, ","), f.Errno, when)
	switch {
	case len(f.Paths) > 2:
		s += fmt.Sprintf(" paths=%s,... (%d)", f.Paths[0], len(f.Paths))
	case len(f.Paths) > 0:
		s += " paths=" + strings.Join(f.Paths, ",")
	}
	return s
}

// straceArgs is the strace command line that attaches to pid and injects
// f, writing the injected calls to out.
func (f fault) straceArgs(pid int, out string) []string {
	calls := strings.Join(f.Syscalls, ",")
	when := strconv.Itoa(f.When)
	if f.Plus {
		when += "+"
	}
	args := []string{"-f", "-qq", "-o", out, "-e", "trace=" + calls,
		"-e", "inject=" + calls + ":error=" + f.Errno + ":when=" + when}
	for _, p := range f.Paths {
		args = append(args, "-P", p)
	}
	return append(args, "-p", strconv.Itoa(pid))
}

// injector is strace attached to a daemon.
type injector struct {
	t      testing.TB
	f      fault
	cmd    *exec.Cmd
	out    string
	stderr bytes.Buffer
	exited chan struct{}
}

// needStrace fails (CI=true) or skips without strace.
func needStrace(t testing.TB) string {
	t.Helper()
	p, err := exec.LookPath("strace")
	if err != nil {
		testenv.Missing(t, "strace not installed (scripts/deps.sh test installs it)")
	}
	return p
}

// inject attaches strace to pid with fault f and returns once every
// thread of pid is traced (so the next call a test provokes is counted).
func inject(t testing.TB, pid int, f fault) *injector {
	t.Helper()
	bin := needStrace(t)
	in := &injector{t: t, f: f, out: filepath.Join(t.TempDir(), "strace.out"), exited: make(chan struct{})}
	in.cmd = exec.Command(bin, f.straceArgs(pid, in.out)...)
	in.cmd.Stderr = &in.stderr
	if err := in.cmd.Start(); err != nil {
		t.Fatalf("strace: %v", err)
	}
	go func() { _ = in.cmd.Wait(); close(in.exited) }()
	t.Cleanup(in.detach)
	deadline := time.Now().Add(20 * time.Second)
	for !in.tracing(pid) {
		select {
		case <-in.exited:
			if in.injected() > 0 {
				return in // the fault hit, and the daemon ended, before the poll saw the attach
			}
			t.Fatalf("strace %v exited (%v) before attaching: %s", in.cmd.Args, in.cmd.ProcessState, in.stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("strace did not attach to %d in 20s: %s", pid, in.stderr.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
	return in
}

// tracing reports whether every thread of pid has strace for its tracer.
func (in *injector) tracing(pid int) bool {
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil || len(tasks) == 0 {
		return false
	}
	want := strconv.Itoa(in.cmd.Process.Pid)
	for _, task := range tasks {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/status", pid, task.Name()))
		if err != nil {
			return false
		}
		ok := false
		for line := range strings.SplitSeq(string(b), "\n") {
			if v, found := strings.CutPrefix(line, "TracerPid:"); found {
				ok = strings.TrimSpace(v) == want
			}
		}
		if !ok {
			return false
		}
	}
	return true
}

// injected is how many calls strace has failed so far.
func (in *injector) injected() int {
	b, _ := os.ReadFile(in.out)
	return bytes.Count(b, []byte("(INJECTED)"))
}

// waitInjected waits up to d for a first injected failure or for done to
// close (the daemon exited); it returns the count.
func (in *injector) waitInjected(d time.Duration, done <-chan struct{}) int {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if n := in.injected(); n > 0 {
			return n
		}
		select {
		case <-done:
			return in.injected()
		case <-in.exited:
			return in.injected()
		case <-time.After(10 * time.Millisecond):
		}
	}
	return in.injected()
}

// detach stops strace (SIGINT: it detaches from every thread and exits)
// and waits for it. The daemon runs on untraced.
func (in *injector) detach() {
	select {
	case <-in.exited:
		return
	default:
	}
	_ = in.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-in.exited:
	case <-time.After(30 * time.Second):
		_ = in.cmd.Process.Kill()
		<-in.exited
	}
}
