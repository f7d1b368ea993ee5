package archived

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/edgeseal/edgeseal/archive"
	"github.com/edgeseal/edgeseal/archive/api"
	"github.com/edgeseal/edgeseal/archive/config"
	"github.com/edgeseal/edgeseal/archive/dashboard"
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
	srv, err = api.New(api.Options{
		Archive: a, Users: api.OpenUsers(c.UsersFile), SessionTTL: c.SessionTTL, SecureCookie: c.TLS(), Logger: log,
	})
	if err != nil {
		return nil, nil, nil, err
	}
	srv.MountDashboard(dashboard.Options{}) // the auditor's view at "/"
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
