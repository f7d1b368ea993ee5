package e2e

import (
	"net"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/edgeseal/edgeseal/internal/sdnotify"
)

// notifySocket listens on a unixgram socket under /tmp (socket paths are
// short) as systemd would for a Type=notify unit.
func notifySocket(t *testing.T) (string, *net.UnixConn) {
	t.Helper()
	dir, err := os.MkdirTemp("", "sdn")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	p := filepath.Join(dir, "notify")
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: p, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return p, c
}

// expectNotify reads datagrams until want arrives (watchdog beats may come
// in between) and fails after timeout or on an unexpected state.
func expectNotify(t *testing.T, c *net.UnixConn, want string, timeout time.Duration) {
	t.Helper()
	buf := make([]byte, 4096)
	deadline := time.Now().Add(timeout)
	for {
		c.SetReadDeadline(deadline)
		n, err := c.Read(buf)
		if err != nil {
			t.Fatalf("waiting for %q: %v", want, err)
		}
		got := string(buf[:n])
		if got == want {
			return
		}
		if got != sdnotify.Watchdog {
			t.Fatalf("got %q while waiting for %q", got, want)
		}
	}
}

// notifyLifecycle runs the binary with args as systemd would run a
// Type=notify unit with a watchdog: READY=1 once ready, beats WATCHDOG=1
// beats, STOPPING=1 on SIGTERM, then exit status 0.
func notifyLifecycle(t *testing.T, name string, beats int, args ...string) {
	t.Helper()
	sock, c := notifySocket(t)
	p := startProc(t, name, []string{"NOTIFY_SOCKET=" + sock, "WATCHDOG_USEC=200000"}, args...)
	expectNotify(t, c, sdnotify.Ready, 60*time.Second)
	for range beats {
		expectNotify(t, c, sdnotify.Watchdog, 5*time.Second)
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	expectNotify(t, c, sdnotify.Stopping, 30*time.Second)
	select {
	case <-p.exited:
		if p.waitErr != nil {
			t.Fatalf("%s exit: %v\n%s", name, p.waitErr, p.stderr)
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("%s did not stop\n%s", name, p.stderr)
	}
}

// TestAgentNotify runs the agent binary as systemd would run the unit:
// READY=1 once ready, WATCHDOG=1 beats, STOPPING=1 on SIGTERM.
func TestAgentNotify(t *testing.T) {
	needAgent(t)
	a := newAgentDir(t, agentOpts{sealEvery: 1000, sealInterval: "1h", maxBody: "64 KiB"})
	notifyLifecycle(t, "agent", 2, "agent", "--config", filepath.Join(a.dir, "agent.yaml"))
}

// TestArchiveNotify: the archive daemon says READY=1 after "archive ready",
// feeds the watchdog while its subscriber runs, and STOPPING=1 on stop.
func TestArchiveNotify(t *testing.T) {
	needAgent(t)
	notifyLifecycle(t, "archive", 1, "archive", "--config", writeArchiveConfig(t, t.TempDir(), "", ""))
}
