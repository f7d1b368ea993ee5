package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/edgeseal/edgeseal/internal/e2etest"
	"github.com/edgeseal/edgeseal/internal/testenv"
)

// agentBin is the edgeseal binary TestMain builds for the system tests;
// agentBinErr says why there is none. moduleRoot is the repository's root.
var (
	agentBin    string
	agentBinErr error
	moduleRoot  string
)

func TestMain(m *testing.M) {
	os.Exit(buildAndRun(m))
}

// buildAndRun builds ./cmd/edgeseal (cgo on, for the in-process TPM
// simulator) into a temporary directory and runs the tests.
func buildAndRun(m *testing.M) int {
	dir, err := os.MkdirTemp("", "edgeseal-e2e-bin")
	if err != nil {
		agentBinErr = err
		return m.Run()
	}
	defer os.RemoveAll(dir)
	gobin, err := exec.LookPath("go")
	if err != nil {
		agentBinErr = fmt.Errorf("go tool not found: %w", err)
		return m.Run()
	}
	gomod, err := exec.Command(gobin, "env", "GOMOD").Output()
	if err != nil || strings.TrimSpace(string(gomod)) == "" || strings.TrimSpace(string(gomod)) == os.DevNull {
		fmt.Fprintf(os.Stderr, "e2e: no module root (go env GOMOD): %v\n", err)
		return 1
	}
	moduleRoot = filepath.Dir(strings.TrimSpace(string(gomod)))
	bin := filepath.Join(dir, "edgeseal")
	build := exec.Command(gobin, "build", "-o", bin, "./cmd/edgeseal")
	build.Dir = moduleRoot
	build.Env = append(os.Environ(), "CGO_ENABLED=1")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building edgeseal for the system tests: %v\n%s", err, out)
		return 1
	}
	agentBin = bin
	return m.Run()
}

// repoFile is a path under the module root.
func repoFile(elem ...string) string {
	return filepath.Join(append([]string{moduleRoot}, elem...)...)
}

// needBinary fails (CI=true) or skips when the binary was not built.
func needBinary(t testing.TB) {
	t.Helper()
	if agentBin == "" {
		testenv.Missing(t, "e2e: no binary: %v", agentBinErr)
	}
}

// needAgent fails (CI=true) or skips when the binary or the simulator is
// missing.
func needAgent(t testing.TB) {
	t.Helper()
	switch {
	case agentBinErr != nil:
		testenv.Missing(t, "e2e: %v", agentBinErr)
	case simulatorOpener == nil:
		testenv.Missing(t, "e2e: built without cgo: no TPM simulator")
	}
}

// runCmd runs the binary with args and returns its standard output and
// exit code; when it fails, the error it printed follows as "error: ...".
func runCmd(t testing.TB, args ...string) (string, int) {
	t.Helper()
	return runCmdEnv(t, nil, args...)
}

// runCmdEnv is runCmd with extra environment variables (NAME=VALUE).
func runCmdEnv(t testing.TB, env []string, args ...string) (string, int) {
	t.Helper()
	if agentBin == "" {
		testenv.Missing(t, "e2e: no binary: %v", agentBinErr)
	}
	cmd := exec.Command(agentBin, args...)
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if err == nil {
		return stdout.String(), 0
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		t.Fatalf("edgeseal %v: %v", args, err)
	}
	out := stdout.String()
	if msg := printedError(stderr.String()); msg != "" {
		out += "error: " + msg + "\n"
	}
	return out, ee.ExitCode()
}

// printedError is the error the binary printed last on stderr
// ("edgeseal: ..." after its log lines, before the usage text).
func printedError(stderr string) string {
	i := strings.LastIndex("\n"+stderr, "\nedgeseal: ")
	if i < 0 {
		return ""
	}
	msg := stderr[i+len("edgeseal: "):]
	if j := strings.Index(msg, "\nusage:\n"); j >= 0 {
		msg = msg[:j]
	}
	return strings.TrimSuffix(msg, "\n")
}

// syncBuffer is a bytes.Buffer safe for the exec copier and the test.
type syncBuffer = e2etest.LockedBuffer

// proc is a running edgeseal daemon (agent or archive): its standard error
// is kept, and the test's cleanup kills it if it still runs.
type proc struct {
	t       testing.TB
	name    string // "agent", "archive": for failure messages
	cmd     *exec.Cmd
	stderr  *syncBuffer
	exited  chan struct{}
	waitErr error
}

// startProc starts the binary with args, and env (NAME=VALUE) added to
// the test's environment.
func startProc(t testing.TB, name string, env []string, args ...string) *proc {
	t.Helper()
	p := &proc{t: t, name: name, stderr: &syncBuffer{}, exited: make(chan struct{})}
	p.cmd = exec.Command(agentBin, args...)
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stderr = p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.waitErr = p.cmd.Wait(); close(p.exited) }()
	t.Cleanup(p.kill)
	return p
}

// waitFor polls cond every few milliseconds for at most 60 s, failing
// when the process exits first or the time is up.
func (p *proc) waitFor(what string, cond func() bool) {
	p.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		select {
		case <-p.exited:
			p.t.Fatalf("%s exited before %s: %v\n%s", p.name, what, p.waitErr, p.stderr)
		default:
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("%s not %s after 60s\n%s", p.name, what, p.stderr)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// terminate sends SIGTERM and wants exit status 0.
func (p *proc) terminate() {
	p.t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		p.t.Fatal(err)
	}
	select {
	case <-p.exited:
	case <-time.After(60 * time.Second):
		p.t.Fatalf("%s did not stop on SIGTERM\n%s", p.name, p.stderr)
	}
	if p.waitErr != nil {
		p.t.Fatalf("%s exit: %v\n%s", p.name, p.waitErr, p.stderr)
	}
}

// kill sends SIGKILL and waits for the process to be gone.
func (p *proc) kill() {
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.exited
}

// logField returns a field of the first JSON log line with msg.
func (p *proc) logField(msg, key string) string {
	sc := bufio.NewScanner(strings.NewReader(p.stderr.String()))
	for sc.Scan() {
		var m map[string]any
		if json.Unmarshal(sc.Bytes(), &m) == nil && m["msg"] == msg {
			s, _ := m[key].(string)
			return s
		}
	}
	return ""
}
