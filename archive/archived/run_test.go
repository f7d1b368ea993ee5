package archived

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edgeseal/edgeseal/archive/config"
	"github.com/edgeseal/edgeseal/internal/sdnotify"
	"github.com/edgeseal/edgeseal/internal/sdnotify/sdnotifytest"
)

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
	sock, c := sdnotifytest.Listen(t)
	env := map[string]string{"NOTIFY_SOCKET": sock, "WATCHDOG_USEC": "200000"}
	n := sdnotify.New(func(k string) string { return env[k] }, nil)
	ctx, cancel := context.WithCancel(sdnotify.NewContext(t.Context(), n))
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- Run(ctx, cfg, Options{Logger: slog.New(slog.DiscardHandler)}) }()
	sdnotifytest.Expect(t, c, sdnotify.Ready, 60*time.Second)
	sdnotifytest.Expect(t, c, sdnotify.Watchdog, 5*time.Second)
	cancel()
	sdnotifytest.Expect(t, c, sdnotify.Stopping, 30*time.Second)
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("archive did not stop")
	}
}

// TestAPIOffLoopbackNeedsTLS: a config that reached Run with the read API
// off loopback and no certificate (Load refuses it too) does not start.
func TestAPIOffLoopbackNeedsTLS(t *testing.T) {
	dir := t.TempDir()
	cfgFile := filepath.Join(dir, "archive.yaml")
	if err := os.WriteFile(cfgFile, []byte("data_dir: data\nmqtt:\n  embedded:\n    listen: 127.0.0.1:0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(cfgFile)
	if err != nil {
		t.Fatal(err)
	}
	cfg.API.Listen = "0.0.0.0:0"
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	err = Run(ctx, cfg, Options{})
	if err == nil || !strings.Contains(err.Error(), "loopback") {
		t.Fatalf("Run with api.listen 0.0.0.0 and no TLS: %v", err)
	}
}
