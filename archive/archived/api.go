package archived

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/edgeseal/edgeseal/archive"
	"github.com/edgeseal/edgeseal/archive/api"
	"github.com/edgeseal/edgeseal/archive/config"
	"github.com/edgeseal/edgeseal/archive/dashboard"
	"github.com/edgeseal/edgeseal/internal/fsutil"
)

// serveAPI starts the read API of cfg.API (off when Listen is empty):
// TLS with the configured certificate, or plain HTTP on a loopback
// address only. stop shuts it down.
func serveAPI(ctx context.Context, cfg *config.Config, a *archive.Archive, log *slog.Logger) (srv *api.Server, addr net.Addr, stop func(), err error) {
	c := cfg.API
	if c.Listen == "" {
		return nil, nil, func() {}, nil
	}
	if err := api.CheckListen(c.Listen, c.TLS()); err != nil {
		return nil, nil, nil, err
	}
	var tlsCfg *tls.Config
	if c.TLS() {
		cert, err := tls.LoadX509KeyPair(c.TLSCert, c.TLSKey)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("api: certificate: %w", err)
		}
		tlsCfg = &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}}
	}
	var provider *api.OIDC
	if o := c.OIDC; o.Issuer != "" {
		secret, err := readSecretFile(o.ClientSecretFile)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("api.oidc.client_secret_file: %w", err)
		}
		if provider, err = api.NewOIDC(ctx, api.OIDCConfig{Issuer: o.Issuer, ClientID: o.ClientID, ClientSecret: secret,
			RedirectURL: o.RedirectURL, RoleClaim: o.RoleClaim, Roles: o.RoleMap()}); err != nil {
			return nil, nil, nil, err
		}
	}
	srv, err = api.New(api.Options{
		Archive: a, Users: api.OpenUsers(c.UsersFile), SessionTTL: c.SessionTTL, SecureCookie: c.TLS(), OIDC: provider, Logger: log,
		Decrypt: api.DecryptPolicy(c.DecryptMap()),
	})
	if err != nil {
		return nil, nil, nil, err
	}
	srv.MountDashboard(dashboard.Options{PackURL: "/v1/evidence?export={id}&device={site}/{name}"}) // the auditor's view at "/"
	ln, err := net.Listen("tcp", c.Listen)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("api: %w", err)
	}
	if tlsCfg != nil {
		ln = tls.NewListener(ln, tlsCfg)
	}
	hs := &http.Server{
		Handler: srv, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second, IdleTimeout: 2 * time.Minute,
		MaxHeaderBytes: 16 << 10, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		BaseContext: func(net.Listener) context.Context { return ctx },
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("api: serve", "err", err)
		}
	}()
	log.Info("read API listening", "addr", ln.Addr().String(), "tls", tlsCfg != nil, "users", c.UsersFile)
	return srv, ln.Addr(), func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = hs.Shutdown(sctx)
		_ = hs.Close()
		<-done
	}, nil
}

// readSecretFile reads a one-line secret: a regular file (not a symbolic
// link) of at most 4 KiB that group and others cannot read.
func readSecretFile(path string) (string, error) {
	fi, err := os.Lstat(path)
	if err != nil {
		return "", err
	}
	if !fi.Mode().IsRegular() {
		return "", fmt.Errorf("%s: not a regular file (a symbolic link is refused)", path)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return "", fmt.Errorf("%s: mode %v, want 0600", path, fi.Mode().Perm())
	}
	b, err := fsutil.ReadLimited(path, 4096)
	if err != nil {
		return "", err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	if line = strings.TrimSpace(line); line == "" {
		return "", fmt.Errorf("%s: empty", path)
	}
	return line, nil
}
