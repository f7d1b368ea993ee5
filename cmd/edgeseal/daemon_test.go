package main

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/edgeseal/edgeseal/archive"
	"github.com/edgeseal/edgeseal/archive/broker"
	aconfig "github.com/edgeseal/edgeseal/archive/config"
)

// embeddedArchive is the archive daemon (runArchive) with its embedded
// broker, in this process.
type embeddedArchive struct {
	a       *archive.Archive
	b       *broker.Broker
	dataDir string
	keyFile string
	logs    *lockedBuffer
}

func startEmbeddedArchive(t *testing.T) *embeddedArchive {
	t.Helper()
	adir := t.TempDir()
	cfgFile := filepath.Join(adir, "archive.yaml")
	if err := os.WriteFile(cfgFile, []byte("data_dir: data\nmqtt:\n  embedded:\n    listen: 127.0.0.1:0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	acfg, err := aconfig.Load(cfgFile)
	if err != nil {
		t.Fatal(err)
	}
	ea := &embeddedArchive{dataDir: acfg.DataDir, keyFile: acfg.KeyFile, logs: &lockedBuffer{}}
	ctx, cancel := context.WithCancel(t.Context())
	ready := make(chan struct{})
	done := make(chan error, 1)
	log := slog.New(slog.NewTextHandler(ea.logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	go func() {
		done <- runArchive(ctx, acfg, log, &archiveHooks{ready: func(a *archive.Archive, b *broker.Broker) {
			ea.a, ea.b = a, b
			close(ready)
		}})
	}()
	select {
	case <-ready:
	case err := <-done:
		cancel()
		t.Fatalf("archive daemon: %v\n%s", err, ea.logs)
	case <-time.After(60 * time.Second):
		cancel()
		t.Fatal("archive daemon not ready")
	}
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("archive daemon: %v", err)
		}
	})
	return ea
}
