package archived

import (
	"context"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/edgeseal/edgeseal/archive/config"
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

// TestArchiveNotify: the archive daemon says READY=1 after "archive ready",
// feeds the watchdog while its subscriber runs, and STOPPING=1 on stop.
func TestArchiveNotify(t *testing.T) {
	dir := t.TempDir()
	cfgFile := filepath.Join(dir, "archive.yaml")
	if err := os.WriteFile(cfgFile, []byte("data_dir: data\nmqtt:\n  embedded:\n    listen: 127.0.0.1:0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(cfgFile)
	if err != nil {
		t.Fatal(err)
	}
	sock, c := notifySocket(t)
	env := map[string]string{"NOTIFY_SOCKET": sock, "WATCHDOG_USEC": "200000"}
	n := sdnotify.New(func(k string) string { return env[k] }, nil)
	ctx, cancel := context.WithCancel(sdnotify.NewContext(t.Context(), n))
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- Run(ctx, cfg, Options{Logger: slog.New(slog.DiscardHandler)}) }()
	expectNotify(t, c, sdnotify.Ready, 60*time.Second)
	expectNotify(t, c, sdnotify.Watchdog, 5*time.Second)
	cancel()
	expectNotify(t, c, sdnotify.Stopping, 30*time.Second)
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("archive did not stop")
	}
}
