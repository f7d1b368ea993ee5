package main

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"testing"

	"github.com/edgeseal/edgeseal/systemd"
	"github.com/edgeseal/edgeseal/systemd/systemdtest"
)

func TestServiceUsage(t *testing.T) {
	for _, args := range [][]string{
		{"service"},
		{"service", "install"},
		{"service", "install", "--kind", "broker"},
		{"service", "status", "--kind", "agent", "--root", "/tmp"},
		{"service", "reboot", "--kind", "agent"},
		{"service", "install", "--kind", "agent", "extra"},
	} {
		err := run(context.Background(), args, &bytes.Buffer{}, slog.New(slog.DiscardHandler))
		var ee *exitError
		if !errors.As(err, &ee) || ee.code != 2 {
			t.Errorf("%v: err %v, want a usage error", args, err)
		}
	}
}

func TestServiceInstallRootFlag(t *testing.T) {
	root := t.TempDir()
	var out bytes.Buffer
	if err := run(context.Background(), []string{"service", "install", "--kind", "agent", "--root", root}, &out, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	systemdtest.WantMode(t, filepath.Join(root, systemd.UnitDir, systemd.AgentUnitName), false, 0o644)
}
