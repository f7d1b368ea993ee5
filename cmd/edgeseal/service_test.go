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

// testServiceEnv is a serviceEnv under a temp root whose command runner
// fails the test: under a root prefix no system command may run.
func testServiceEnv(t *testing.T) (*serviceEnv, *bytes.Buffer) {
	t.Helper()
	root := t.TempDir()
	exe := filepath.Join(t.TempDir(), "edgeseal")
	if err := os.WriteFile(exe, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	return &serviceEnv{
		root: root, exe: exe, stdout: &out, log: slog.New(slog.DiscardHandler),
		run: func(_ context.Context, name string, args ...string) error {
			t.Errorf("ran %s %v under a root prefix", name, args)
			return nil
		},
	}, &out
}

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

func TestServiceInstallUninstall(t *testing.T) {
	ctx := context.Background()
	for _, kind := range []string{"agent", "archive"} {
		t.Run(kind, func(t *testing.T) {
			env, out := testServiceEnv(t)
			name, text, _ := systemd.Unit(kind)
			unit := env.path(filepath.Join(unitDir, name))
			for range 2 { // idempotent
				if err := serviceInstall(ctx, env, kind); err != nil {
					t.Fatal(err)
				}
			}
			got, err := os.ReadFile(unit)
			if err != nil || string(got) != text {
				t.Fatalf("unit %s: %v; differs from the embedded unit: %v", unit, err, string(got) != text)
			}
			wantMode(t, unit, false, 0o644)
			wantMode(t, env.path(configDir), true, 0o750)
			wantMode(t, env.path(stateDir(kind)), true, 0o700)
			wantMode(t, env.path(serviceBinary), false, 0o755)
			if !bytes.Contains(out.Bytes(), []byte("installed and enabled "+name)) {
				t.Errorf("output: %s", out.String())
			}

			// Uninstall keeps state and config.
			cfg := env.path(filepath.Join(configDir, kind+".yaml"))
			if err := os.WriteFile(cfg, []byte("x: 1\n"), 0o640); err != nil {
				t.Fatal(err)
			}
			if err := serviceUninstall(ctx, env, kind, false); err != nil {
				t.Fatal(err)
			}
			if _, err := os.Stat(unit); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("unit still there: %v", err)
			}
			for _, p := range []string{cfg, env.path(stateDir(kind))} {
				if _, err := os.Stat(p); err != nil {
					t.Errorf("uninstall removed %s: %v", p, err)
				}
			}

			// --purge removes them.
			if err := serviceInstall(ctx, env, kind); err != nil {
				t.Fatal(err)
			}
			if err := serviceUninstall(ctx, env, kind, true); err != nil {
				t.Fatal(err)
			}
			for _, p := range []string{unit, cfg, env.path(stateDir(kind)), env.path(configDir)} {
				if _, err := os.Stat(p); !errors.Is(err, fs.ErrNotExist) {
					t.Errorf("purge left %s: %v", p, err)
				}
			}
		})
	}
}

// TestServicePurgeKeepsShared: purging one kind keeps /etc/edgeseal while
// the other unit is installed.
func TestServicePurgeKeepsShared(t *testing.T) {
	ctx := context.Background()
	env, _ := testServiceEnv(t)
	for _, k := range []string{"agent", "archive"} {
		if err := serviceInstall(ctx, env, k); err != nil {
			t.Fatal(err)
		}
	}
	if err := serviceUninstall(ctx, env, "archive", true); err != nil {
		t.Fatal(err)
	}
	wantMode(t, env.path(configDir), true, 0o750)
	wantMode(t, env.path(stateDir("agent")), true, 0o700)
	if _, err := os.Stat(env.path(stateDir("archive"))); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("archive state kept: %v", err)
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
	wantMode(t, filepath.Join(root, unitDir, systemd.AgentUnitName), false, 0o644)
}
