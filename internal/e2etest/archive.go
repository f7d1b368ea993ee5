package e2etest

import (
	"context"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/edgeseal/edgeseal/archive"
	"github.com/edgeseal/edgeseal/archive/api"
	"github.com/edgeseal/edgeseal/archive/archived"
	"github.com/edgeseal/edgeseal/archive/broker"
	"github.com/edgeseal/edgeseal/archive/config"
)

// Archive is the archive daemon (archived.Run) running in the test's
// process, once it is ready.
type Archive struct {
	A *archive.Archive
	B *broker.Broker // the embedded broker, nil with an external one
	// API is the read API's address (api.listen set), else nil.
	API     net.Addr
	DataDir string
	KeyFile string
	Logs    *LockedBuffer // its log, level info and up

	cancel context.CancelFunc
	done   chan error
	err    error
	ended  bool
}

// ArchiveConfig writes yaml to dir/archive.yaml and loads it (relative
// paths in it are under dir).
func ArchiveConfig(t testing.TB, dir, yaml string) *config.Config {
	t.Helper()
	cfgFile := filepath.Join(dir, "archive.yaml")
	if err := os.WriteFile(cfgFile, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(cfgFile)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// EmbeddedConfig is an archive config with its data in a new temporary
// directory and the embedded broker on a free loopback port.
func EmbeddedConfig(t testing.TB) *config.Config {
	t.Helper()
	return ArchiveConfig(t, t.TempDir(), "data_dir: data\nmqtt:\n  embedded:\n    listen: 127.0.0.1:0\n")
}

// StartEmbeddedArchive runs an archive daemon of EmbeddedConfig.
func StartEmbeddedArchive(t testing.TB) *Archive {
	t.Helper()
	return StartArchive(t, EmbeddedConfig(t))
}

// StartArchive runs the archive daemon of cfg and waits (at most 60 s)
// until it is ready. The daemon stops when the test ends; an error it
// returns then fails the test.
func StartArchive(t testing.TB, cfg *config.Config) *Archive {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	ar := &Archive{DataDir: cfg.DataDir, KeyFile: cfg.KeyFile, Logs: &LockedBuffer{}, cancel: cancel, done: make(chan error, 1)}
	type started struct {
		a *archive.Archive
		b *broker.Broker
	}
	ready := make(chan started, 1)
	log := slog.New(slog.NewTextHandler(ar.Logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	var apiAddr net.Addr // set before Ready is called
	go func() {
		ar.done <- archived.Run(ctx, cfg, archived.Options{Logger: log, Ready: func(a *archive.Archive, b *broker.Broker) {
			ready <- started{a, b}
		}, APIReady: func(_ *api.Server, addr net.Addr) { apiAddr = addr }})
	}()
	select {
	case st := <-ready:
		ar.A, ar.B, ar.API = st.a, st.b, apiAddr
	case err := <-ar.done:
		cancel()
		t.Fatalf("archive daemon stopped: %v\n%s", err, ar.Logs)
	case <-time.After(60 * time.Second):
		cancel()
		t.Fatalf("archive daemon not ready after 60s\n%s", ar.Logs)
	}
	t.Cleanup(func() {
		if err := ar.wait(); err != nil {
			t.Errorf("archive daemon: %v\n%s", err, ar.Logs)
		}
	})
	return ar
}

// wait stops the daemon (once) and returns what Run returned.
func (ar *Archive) wait() error {
	if !ar.ended {
		ar.cancel()
		ar.err = <-ar.done
		ar.ended = true
	}
	return ar.err
}

// Stop stops the daemon and fails the test when Run returned an error.
func (ar *Archive) Stop(t testing.TB) {
	t.Helper()
	if err := ar.wait(); err != nil {
		t.Fatalf("archive daemon: %v\n%s", err, ar.Logs)
	}
}
