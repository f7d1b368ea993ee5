package api

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/edgeseal/edgeseal/internal/testenv"
)

// shortDir is a temporary directory with a path short enough for a unix
// socket (108 bytes).
func shortDir(t *testing.T) string {
	t.Helper()
	d, err := os.MkdirTemp("", "esapi")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

// The socket's directory is created, the mode applied, a stale socket
// replaced; a live socket and a non-socket file are refused.
func TestListenUnix(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(shortDir(t), "run", "agent.sock")
	ln, err := ListenUnix(ctx, path, 0o660)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o660 || fi.Mode()&os.ModeSocket == 0 {
		t.Fatalf("socket %v, %v", fi.Mode(), err)
	}
	if _, err := ListenUnix(ctx, path, 0o660); err == nil || !strings.Contains(err.Error(), "another process") {
		t.Fatalf("second listener on a live socket: %v", err)
	}
	// A crash leaves the socket file behind.
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close()
	if _, err := os.Stat(path); err != nil {
		t.Fatal("test setup: the stale socket is gone")
	}
	ln, err = ListenUnix(ctx, path, 0o600)
	if err != nil {
		t.Fatalf("stale socket not replaced: %v", err)
	}
	ln.Close()

	file := filepath.Join(shortDir(t), "plain")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := ListenUnix(ctx, file, 0o660); err == nil {
		t.Fatal("a regular file was taken over")
	}
}

// The TCP listener is loopback only.
func TestListenTLSRefusesNonLoopback(t *testing.T) {
	for _, addr := range []string{"0.0.0.0:0", "192.0.2.1:8443", "[::]:0", "example.com:443"} {
		if _, err := ListenTLS(context.Background(), addr, "no.crt", "no.key"); err == nil || !strings.Contains(err.Error(), "loopback") {
			t.Errorf("%s: %v", addr, err)
		}
	}
}

// TestListenUnixGroup: the socket gets the group asked for, not the
// process's own (root here may give any group; a member may give its
// supplementary groups).
func TestListenUnixGroup(t *testing.T) {
	gid := testenv.OtherGroup(t)
	path := filepath.Join(shortDir(t), "run", "agent.sock")
	ln, err := ListenUnixGroup(context.Background(), path, 0o660, gid)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	if int(st.Gid) != gid || fi.Mode().Perm() != 0o660 {
		t.Fatalf("socket gid %d mode %04o, want gid %d mode 0660", st.Gid, fi.Mode().Perm(), gid)
	}
}
