package main

import (
	"context"
	"flag"
	"io"
	"log/slog"
	"os"

	"github.com/edgeseal/edgeseal/systemd"
)

// cmdService dispatches `edgeseal service install|uninstall|start|stop|status`.
func cmdService(ctx context.Context, args []string, stdout io.Writer, log *slog.Logger) error {
	if len(args) == 0 {
		return usageErr("service: want install, uninstall, start, stop or status")
	}
	action := args[0]
	fs := flag.NewFlagSet("service "+action, flag.ContinueOnError)
	kind := fs.String("kind", "", "agent or archive (required)")
	root := fs.String("root", "", "install under this root prefix and run no system commands (for tests and image builds)")
	purge := fs.Bool("purge", false, "uninstall: also delete the state directory, the config file and the user")
	if pos, err := parseInterleaved(fs, args[1:]); err != nil {
		return err
	} else if len(pos) > 0 {
		return usageErr("service %s: unexpected argument %q", action, pos[0])
	}
	if _, _, err := systemd.Unit(*kind); err != nil {
		return usageErr("service %s: --kind agent|archive is required", action)
	}
	exe, err := os.Executable()
	if err != nil {
		return &systemd.Error{Op: "find own binary", Err: err}
	}
	env := &systemd.Env{Root: *root, Exe: exe, Stdout: stdout, Logger: log}
	switch action {
	case "install":
		return systemd.Install(ctx, env, *kind)
	case "uninstall":
		return systemd.Uninstall(ctx, env, *kind, *purge)
	case "start", "stop", "status":
		if *root != "" {
			return usageErr("service %s: --root applies to install and uninstall only", action)
		}
		return systemd.Control(action, *kind, stdout)
	}
	return usageErr("service: unknown action %q", action)
}
