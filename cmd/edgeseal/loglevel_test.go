package main

import (
	"bytes"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/edgeseal/edgeseal/bundle/bundletest"
)

// TestOperatorCommandLogLevel: an operator command that loads a config
// (archive import of a bundle from a device it does not know) logs at
// that config's log.level, not at the level of the logger main made (info):
// at error none of the WARN lines it logs at warn.
func TestOperatorCommandLogLevel(t *testing.T) {
	c := bundletest.MustChain(t, 1, bundletest.Options{})
	raw, err := c.Bundles[0].Bytes()
	if err != nil {
		t.Fatal(err)
	}
	levels := map[string]string{}
	for _, level := range []string{"error", "warn"} {
		dir := t.TempDir()
		media := filepath.Join(dir, "media")
		if err := os.Mkdir(media, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(media, "a.bundle.tar"), raw, 0o644); err != nil {
			t.Fatal(err)
		}
		cfg := filepath.Join(dir, "archive.yaml")
		if err := os.WriteFile(cfg, fmt.Appendf(nil, "data_dir: %s\nlog:\n  level: %s\n", filepath.Join(dir, "data"), level), 0o644); err != nil {
			t.Fatal(err)
		}
		var logs bytes.Buffer
		log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
		err := cmdArchiveImport(t.Context(), []string{media, "--config", cfg}, &bytes.Buffer{}, log)
		t.Logf("log.level %s: import: %v\n%s", level, err, logs.String())
		levels[level] = logs.String()
	}
	if strings.Contains(levels["error"], "level=WARN") || strings.Contains(levels["error"], "level=INFO") {
		t.Errorf("log.level error: WARN or INFO lines logged:\n%s", levels["error"])
	}
	if !strings.Contains(levels["warn"], "level=WARN") {
		t.Errorf("log.level warn: no WARN line (the case proves nothing):\n%s", levels["warn"])
	}
}

// TestAtLevel: atLevel raises and lowers the level of the logger it is
// given (its handler's own level replaced), through With and WithGroup.
func TestAtLevel(t *testing.T) {
	var out bytes.Buffer
	base := slog.New(slog.NewTextHandler(&out, &slog.HandlerOptions{Level: slog.LevelInfo}))
	debug := atLevel(base, slog.LevelDebug).With("k", "v").WithGroup("g")
	debug.Debug("shown")
	atLevel(atLevel(base, slog.LevelDebug), slog.LevelError).Warn("hidden")
	atConfigLevel(base, "warn").Info("hidden too")
	atConfigLevel(base, "").Info("info by default")
	got := out.String()
	if !strings.Contains(got, "level=DEBUG msg=shown k=v") || strings.Contains(got, "hidden") || !strings.Contains(got, "info by default") {
		t.Fatalf("logged:\n%s", got)
	}
}
