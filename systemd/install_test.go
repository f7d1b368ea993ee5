package systemd

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/edgeseal/edgeseal/systemd/systemdtest"
)

// testServiceEnv is an Env under a temp root whose command runner
// fails the test: under a root prefix no system command may run.
func testServiceEnv(t *testing.T) (*Env, *bytes.Buffer) {
	t.Helper()
	root := t.TempDir()
	exe := filepath.Join(t.TempDir(), "edgeseal")
	if err := os.WriteFile(exe, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	return &Env{
		Root: root, Exe: exe, Stdout: &out, Logger: slog.New(slog.DiscardHandler),
		Run: func(_ context.Context, name string, args ...string) error {
			t.Errorf("ran %s %v under a root prefix", name, args)
			return nil
		},
	}, &out
}

func TestServiceInstallUninstall(t *testing.T) {
	ctx := context.Background()
	for _, kind := range []string{"agent", "archive"} {
		t.Run(kind, func(t *testing.T) {
			env, out := testServiceEnv(t)
			name, text, _ := Unit(kind)
			unit := env.Path(filepath.Join(UnitDir, name))
			for range 2 { // idempotent
				if err := Install(ctx, env, kind); err != nil {
					t.Fatal(err)
				}
			}
			got, err := os.ReadFile(unit)
			if err != nil || string(got) != text {
				t.Fatalf("unit %s: %v; differs from the embedded unit: %v", unit, err, string(got) != text)
			}
			systemdtest.WantMode(t, unit, false, 0o644)
			systemdtest.WantMode(t, env.Path(ConfigDir), true, 0o750)
			systemdtest.WantMode(t, env.Path(StateDir(kind)), true, 0o700)
			systemdtest.WantMode(t, env.Path(Binary), false, 0o755)
			if !bytes.Contains(out.Bytes(), []byte("installed and enabled "+name)) {
				t.Errorf("output: %s", out.String())
			}

			// Uninstall keeps state and config.
			cfg := env.Path(filepath.Join(ConfigDir, kind+".yaml"))
			if err := os.WriteFile(cfg, []byte("x: 1\n"), 0o640); err != nil {
				t.Fatal(err)
			}
			if err := Uninstall(ctx, env, kind, false); err != nil {
				t.Fatal(err)
			}
			if _, err := os.Stat(unit); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("unit still there: %v", err)
			}
			for _, p := range []string{cfg, env.Path(StateDir(kind))} {
				if _, err := os.Stat(p); err != nil {
					t.Errorf("uninstall removed %s: %v", p, err)
				}
			}

			// --purge removes them.
			if err := Install(ctx, env, kind); err != nil {
				t.Fatal(err)
			}
			if err := Uninstall(ctx, env, kind, true); err != nil {
				t.Fatal(err)
			}
			for _, p := range []string{unit, cfg, env.Path(StateDir(kind)), env.Path(ConfigDir)} {
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
		if err := Install(ctx, env, k); err != nil {
			t.Fatal(err)
		}
	}
	if err := Uninstall(ctx, env, "archive", true); err != nil {
		t.Fatal(err)
	}
	systemdtest.WantMode(t, env.Path(ConfigDir), true, 0o750)
	systemdtest.WantMode(t, env.Path(StateDir("agent")), true, 0o700)
	if _, err := os.Stat(env.Path(StateDir("archive"))); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("archive state kept: %v", err)
	}
}
