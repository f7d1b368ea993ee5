package api

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// ListenUnix listens on the unix socket at path with permission bits mode,
// in the process's own group (ListenUnixGroup with gid -1).
func ListenUnix(ctx context.Context, path string, mode fs.FileMode) (net.Listener, error) {
	return ListenUnixGroup(ctx, path, mode, -1)
}

// ListenUnixGroup listens on the unix socket at path with permission bits
// mode and group gid (-1: the process's own group; the process must be a
// member of gid unless it runs as root). It creates the socket's directory
// (0750) and removes a stale socket left by a crash, but refuses to take
// over a socket another process serves, or any path that is not a socket.
// The group is set before the mode, so the socket is never open to the
// wrong group.
func ListenUnixGroup(ctx context.Context, path string, mode fs.FileMode, gid int) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, fmt.Errorf("api: socket directory: %w", err)
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&fs.ModeSocket == 0 {
			return nil, fmt.Errorf("api: %s exists and is not a socket", path)
		}
		d := net.Dialer{Timeout: time.Second}
		if c, err := d.DialContext(ctx, "unix", path); err == nil {
			c.Close()
			return nil, fmt.Errorf("api: %s: another process is serving this socket", path)
		} else if !errors.Is(err, syscall.ECONNREFUSED) {
			return nil, fmt.Errorf("api: probing %s: %w", path, err)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("api: removing stale socket: %w", err)
		}
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "unix", path)
	if err != nil {
		return nil, fmt.Errorf("api: listen: %w", err)
	}
	if gid >= 0 {
		if err := os.Lchown(path, -1, gid); err != nil {
			ln.Close()
			return nil, fmt.Errorf("api: socket group %d (api.socket_group; the agent must be a member of it): %w", gid, err)
		}
	}
	if err := os.Chmod(path, mode.Perm()); err != nil {
		ln.Close()
		return nil, fmt.Errorf("api: socket mode: %w", err)
	}
	return ln, nil
}

// ListenTLS listens on a loopback TCP address with TLS (1.2 or later) with
// the certificate and key in the PEM files given. A host that is not
// loopback ("localhost" must resolve to loopback only) is refused.
func ListenTLS(ctx context.Context, addr, certFile, keyFile string) (net.Listener, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("api: tcp address %q: %w", addr, err)
	}
	if err := checkLoopback(ctx, host); err != nil {
		return nil, err
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("api: tls: %w", err)
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("api: listen: %w", err)
	}
	if ip := ln.Addr().(*net.TCPAddr).IP; !ip.IsLoopback() {
		ln.Close()
		return nil, fmt.Errorf("api: %s is not a loopback address", ln.Addr())
	}
	return tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}), nil
}

func checkLoopback(ctx context.Context, host string) error {
	var ips []net.IP
	if ip := net.ParseIP(host); ip != nil {
		ips = []net.IP{ip}
	} else if host == "localhost" {
		addrs, err := net.DefaultResolver.LookupIPAddr(ctx, host)
		if err != nil {
			return fmt.Errorf("api: resolving %s: %w", host, err)
		}
		for _, a := range addrs {
			ips = append(ips, a.IP)
		}
	}
	if len(ips) == 0 {
		return fmt.Errorf("api: tcp host %q must be a loopback address or localhost", host)
	}
	for _, ip := range ips {
		if !ip.IsLoopback() {
			return fmt.Errorf("api: tcp host %q (%s) is not loopback; the API listens on loopback only", host, ip)
		}
	}
	return nil
}
