package e2e

import (
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/edgeseal/edgeseal/internal/sdnotify"
	"github.com/edgeseal/edgeseal/internal/sdnotify/sdnotifytest"
)

// notifyLifecycle runs the binary with args as systemd would run a
// Type=notify unit with a watchdog: READY=1 once ready, beats WATCHDOG=1
// beats, STOPPING=1 on SIGTERM, then exit status 0.
func notifyLifecycle(t *testing.T, name string, beats int, args ...string) {
	t.Helper()
	sock, c := sdnotifytest.Listen(t)
	p := startProc(t, name, []string{"NOTIFY_SOCKET=" + sock, "WATCHDOG_USEC=200000"}, args...)
	sdnotifytest.Expect(t, c, sdnotify.Ready, 60*time.Second)
	for range beats {
		sdnotifytest.Expect(t, c, sdnotify.Watchdog, 5*time.Second)
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	sdnotifytest.Expect(t, c, sdnotify.Stopping, 30*time.Second)
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
