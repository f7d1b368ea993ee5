package main

import (
	"net"
	"os"
	"os/exec"
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
	cmd := exec.Command(agentBin, "agent", "--config", filepath.Join(a.dir, "agent.yaml"))
	cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+sock, "WATCHDOG_USEC=200000")
	stderr := &syncBuffer{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stopped := false
	defer func() {
		if !stopped {
			cmd.Process.Kill()
			<-exited
		}
	}()
	expectNotify(t, c, sdnotify.Ready, 60*time.Second)
	expectNotify(t, c, sdnotify.Watchdog, 5*time.Second)
	expectNotify(t, c, sdnotify.Watchdog, 5*time.Second)
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	expectNotify(t, c, sdnotify.Stopping, 30*time.Second)
	select {
	case err := <-exited:
		stopped = true
		if err != nil {
			t.Fatalf("agent exit: %v\n%s", err, stderr)
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("agent did not stop\n%s", stderr)
	}
}
