// Package sdnotifytest plays systemd's side of the notify protocol in
// tests: a unixgram socket for NOTIFY_SOCKET and a reader that waits for a
// state, skipping watchdog beats.
package sdnotifytest

import (
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/edgeseal/edgeseal/internal/sdnotify"
)

// Listen listens on a unixgram socket under /tmp (socket paths are short)
// as systemd would for a Type=notify unit, and returns its path; both are
// removed when the test ends.
func Listen(t testing.TB) (string, *net.UnixConn) {
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

// Expect reads datagrams until want arrives (watchdog beats may come in
// between) and fails after timeout or on an unexpected state.
func Expect(t testing.TB, c *net.UnixConn, want string, timeout time.Duration) {
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
