// Package swtpmtest starts swtpm processes for tests: a TPM 2.0 emulator on
// free 127.0.0.1 ports with its state in a temporary directory, killed when
// the test ends. Tests in any package can use it to run against a TPM that
// keeps NV across restarts.
package swtpmtest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/edgeseal/edgeseal/internal/testenv"
)

// Instance is a running swtpm.
type Instance struct {
	Spec     string // "swtpm:127.0.0.1:PORT", for tpm.Open
	Addr     string // TPM command port
	CtrlAddr string // control port, for swtpm_ioctl
	StateDir string

	t       testing.TB
	cmd     *exec.Cmd
	waitErr chan error
}

// Need fails the test when tool is missing and CI=true, and skips it when
// the tool is missing otherwise.
func Need(t testing.TB, tool string) string {
	t.Helper()
	p, err := exec.LookPath(tool)
	if err == nil {
		return p
	}
	testenv.Missing(t, "%s not found: %v", tool, err)
	return ""
}

// Start starts swtpm with a fresh state directory and returns it running.
func Start(t testing.TB) *Instance {
	t.Helper()
	return StartIn(t, t.TempDir())
}

// StartIn starts swtpm with its state in dir (which may hold the state of
// an earlier instance).
func StartIn(t testing.TB, dir string) *Instance {
	t.Helper()
	Need(t, "swtpm")
	in := &Instance{StateDir: dir, t: t}
	var lastErr error
	for range 10 {
		port, err := freePortPair()
		if err != nil {
			lastErr = err
			continue
		}
		if lastErr = in.start(port); lastErr == nil {
			t.Cleanup(in.Stop)
			return in
		}
	}
	t.Fatalf("swtpmtest: start: %v", lastErr)
	return nil
}

func (in *Instance) start(port int) error {
	in.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	in.CtrlAddr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port+1))
	in.Spec = "swtpm:" + in.Addr
	log := filepath.Join(in.StateDir, "swtpm.log")
	cmd := exec.Command("swtpm", "socket", "--tpm2",
		"--server", fmt.Sprintf("type=tcp,port=%d,bindaddr=127.0.0.1", port),
		"--ctrl", fmt.Sprintf("type=tcp,port=%d,bindaddr=127.0.0.1", port+1),
		"--tpmstate", "dir="+in.StateDir,
		"--flags", "not-need-init,startup-clear",
		"--log", "file="+log+",level=1",
	)
	dieWithParent(cmd)
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("swtpm: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-exited:
			b, _ := os.ReadFile(log)
			return fmt.Errorf("swtpm exited: %v: %s", err, b)
		default:
		}
		// Both ports: swtpm may listen on the control port before the
		// command port (seen under load: "connection refused" on the
		// first command).
		if listening(in.CtrlAddr) && listening(in.Addr) {
			in.cmd = cmd
			in.waitErr = exited
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	_ = cmd.Process.Kill()
	<-exited
	return fmt.Errorf("swtpm did not listen on %s and %s", in.CtrlAddr, in.Addr)
}

// listening reports whether addr accepts a connection (closed at once;
// swtpm then waits for the next one).
func listening(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
	if err != nil {
		return false
	}
	_ = c.Close()
	return true
}

// Stop kills swtpm (no TPM2_Shutdown, like a power cut) and waits for it.
func (in *Instance) Stop() {
	if in.cmd == nil {
		return
	}
	_ = in.cmd.Process.Kill()
	<-in.waitErr
	in.cmd = nil
}

// Restart kills swtpm and starts it again on the same state directory and
// ports, as a host reboot would.
func (in *Instance) Restart() {
	in.t.Helper()
	in.Stop()
	port, _ := strconv.Atoi(in.Addr[len("127.0.0.1:"):])
	var err error
	for range 20 {
		if err = in.start(port); err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	in.t.Fatalf("swtpmtest: restart: %v", err)
}

// Reset resets the TPM through the control port (swtpm_ioctl -i), as a
// host reset would: PCRs clear and resetCount rises at the next
// TPM2_Startup(CLEAR), which tpm.Open sends. Close any tpm.TPM first.
func (in *Instance) Reset(ctx context.Context) error {
	Need(in.t, "swtpm_ioctl")
	out, err := exec.CommandContext(ctx, "swtpm_ioctl", "-i", "--tcp", in.CtrlAddr).CombinedOutput()
	if err != nil {
		return fmt.Errorf("swtpm_ioctl -i: %v: %s", err, out)
	}
	return nil
}

// freePortPair finds a port P with P+1 also free on 127.0.0.1.
func freePortPair() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	port := l.Addr().(*net.TCPAddr).Port
	l2, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port+1)))
	_ = l.Close()
	if err != nil {
		return 0, err
	}
	_ = l2.Close()
	return port, nil
}
