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

// TestAgentNotify runs the agent binary as systemd would run the unit:
// READY=1 once ready, WATCHDOG=1 beats, STOPPING=1 on SIGTERM.
func TestAgentNotify(t *testing.T) {
	needAgent(t)
	a := newAgentDir(t, agentOpts{sealEvery: 1000, sealInterval: "1h", maxBody: "64 KiB"})
	sock, c := notifySocket(t)
	p := startProc(t, "agent", []string{"NOTIFY_SOCKET=" + sock, "WATCHDOG_USEC=200000"}, "agent", "--config", filepath.Join(a.dir, "agent.yaml"))
	expectNotify(t, c, sdnotify.Ready, 60*time.Second)
	expectNotify(t, c, sdnotify.Watchdog, 5*time.Second)
	expectNotify(t, c, sdnotify.Watchdog, 5*time.Second)
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	expectNotify(t, c, sdnotify.Stopping, 30*time.Second)
	select {
	case <-p.exited:
		if p.waitErr != nil {
			t.Fatalf("agent exit: %v\n%s", p.waitErr, p.stderr)
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("agent did not stop\n%s", p.stderr)
	}
}

// TestArchiveNotify: the archive daemon says READY=1 after "archive ready",
// feeds the watchdog while its subscriber runs, and STOPPING=1 on stop.
func TestArchiveNotify(t *testing.T) {
	needAgent(t)
	sock, c := notifySocket(t)
	cfg := writeArchiveConfig(t, t.TempDir(), "", "")
	p := startProc(t, "archive", []string{"NOTIFY_SOCKET=" + sock, "WATCHDOG_USEC=200000"}, "archive", "--config", cfg)
	expectNotify(t, c, sdnotify.Ready, 60*time.Second)
	expectNotify(t, c, sdnotify.Watchdog, 5*time.Second)
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	expectNotify(t, c, sdnotify.Stopping, 30*time.Second)
	select {
	case <-p.exited:
		if p.waitErr != nil {
			t.Fatalf("archive exit: %v\n%s", p.waitErr, p.stderr)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("archive did not stop")
	}
}
