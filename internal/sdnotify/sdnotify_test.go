package sdnotify

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgeseal/edgeseal/internal/testenv"
)

// listen makes a notify socket in a temp dir and returns its path and conn.
func listen(t *testing.T) (string, *net.UnixConn) {
	t.Helper()
	p := filepath.Join(t.TempDir(), "notify")
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: p, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return p, c
}

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func recv(t *testing.T, c *net.UnixConn, timeout time.Duration) (string, bool) {
	t.Helper()
	buf := make([]byte, 4096)
	c.SetReadDeadline(time.Now().Add(timeout))
	n, err := c.Read(buf)
	if err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return "", false
		}
		t.Fatal(err)
	}
	return string(buf[:n]), true
}

func TestNotify(t *testing.T) {
	p, c := listen(t)
	n := New(env(map[string]string{"NOTIFY_SOCKET": p}), nil)
	if !n.Enabled() {
		t.Fatal("not enabled")
	}
	for _, s := range []string{Ready, Stopping} {
		if err := n.Notify(s); err != nil {
			t.Fatal(err)
		}
		if got, ok := recv(t, c, 2*time.Second); !ok || got != s {
			t.Fatalf("got %q, %v; want %q", got, ok, s)
		}
	}
}

func TestNotifyAbstract(t *testing.T) {
	name := "edgeseal-sdnotify-test-" + strconv.Itoa(os.Getpid())
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: "@" + name, Net: "unixgram"})
	if err != nil {
		testenv.Missing(t, "abstract sockets (CI=true runs on Linux): %v", err)
	}
	defer c.Close()
	n := New(env(map[string]string{"NOTIFY_SOCKET": "@" + name}), nil)
	if err := n.Notify(Ready); err != nil {
		t.Fatal(err)
	}
	if got, ok := recv(t, c, 2*time.Second); !ok || got != Ready {
		t.Fatalf("got %q, %v", got, ok)
	}
}

func TestNoSocket(t *testing.T) {
	n := New(env(nil), nil)
	if n.Enabled() {
		t.Fatal("enabled without NOTIFY_SOCKET")
	}
	if err := n.Notify(Ready); err != nil {
		t.Fatal(err)
	}
	var nilN *Notifier
	if err := nilN.Notify(Ready); err != nil {
		t.Fatal(err)
	}
	if iv, err := n.WatchdogInterval(); iv != 0 || err != nil {
		t.Fatalf("interval %v, %v", iv, err)
	}
	done := make(chan struct{})
	go func() { n.Start(context.Background(), nil); close(done) }()
	select {
	case <-done:
	case <-time.After(2 * time.Second):
		t.Fatal("Start without a watchdog did not return")
	}
}

func TestNotifyError(t *testing.T) {
	n := New(env(map[string]string{"NOTIFY_SOCKET": filepath.Join(t.TempDir(), "absent")}), nil)
	err := n.Notify(Ready)
	if _, ok := errors.AsType[*Error](err); !ok {
		t.Fatalf("err %v, want *Error", err)
	}
}

func TestWatchdogInterval(t *testing.T) {
	pid := strconv.Itoa(os.Getpid())
	for _, c := range []struct {
		usec, pid string
		want      time.Duration
		bad       bool
	}{
		{"", "", 0, false},
		{"30000000", "", 30 * time.Second, false},
		{"30000000", pid, 30 * time.Second, false},
		{"30000000", "1", 0, false}, // another process's watchdog
		{"x", "", 0, true},
		{"0", "", 0, true},
		{"-5", "", 0, true},
		{"1000", "nope", 0, true},
	} {
		n := New(env(map[string]string{"NOTIFY_SOCKET": "/x", "WATCHDOG_USEC": c.usec, "WATCHDOG_PID": c.pid}), nil)
		got, err := n.WatchdogInterval()
		if got != c.want || (err != nil) != c.bad || (err != nil && !errors.Is(err, ErrBadWatchdog)) {
			t.Errorf("usec %q pid %q: %v, %v", c.usec, c.pid, got, err)
		}
	}
}

func TestStartFeedsOnlyWhileAlive(t *testing.T) {
	p, c := listen(t)
	n := New(env(map[string]string{"NOTIFY_SOCKET": p, "WATCHDOG_USEC": "40000"}), nil) // beat every 20ms
	var alive atomic.Bool
	alive.Store(true)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { n.Start(ctx, alive.Load); close(done) }()
	for range 3 {
		if got, ok := recv(t, c, 2*time.Second); !ok || got != Watchdog {
			t.Fatalf("got %q, %v; want %q", got, ok, Watchdog)
		}
	}
	alive.Store(false)
	// Drain a beat that may have raced the switch, then expect silence.
	recv(t, c, 30*time.Millisecond)
	if got, ok := recv(t, c, 150*time.Millisecond); ok {
		t.Fatalf("fed the watchdog while not alive: %q", got)
	}
	alive.Store(true)
	if got, ok := recv(t, c, 2*time.Second); !ok || got != Watchdog {
		t.Fatalf("no beat after recovery: %q, %v", got, ok)
	}
	cancel()
	select {
	case <-done:
	case <-time.After(2 * time.Second):
		t.Fatal("Start did not return after cancel")
	}
}

func TestContext(t *testing.T) {
	if n := FromContext(context.Background()); n != nil || n.Enabled() {
		t.Fatal("background context has a Notifier")
	}
	n := New(env(map[string]string{"NOTIFY_SOCKET": "/x"}), nil)
	if FromContext(NewContext(context.Background(), n)) != n {
		t.Fatal("Notifier lost")
	}
}
