package main

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/edgeseal/edgeseal/systemd"
)

func wantMode(t *testing.T, path string, dir bool, mode fs.FileMode) {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.IsDir() != dir || st.Mode().Perm() != mode {
		t.Errorf("%s: dir %v mode %v, want dir %v mode %v", path, st.IsDir(), st.Mode().Perm(), dir, mode)
	}
}

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
	wantMode(t, filepath.Join(root, systemd.UnitDir, systemd.AgentUnitName), false, 0o644)
}
