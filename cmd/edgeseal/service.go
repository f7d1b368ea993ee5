package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/kardianos/service"

	"github.com/edgeseal/edgeseal/internal/fsutil"
	"github.com/edgeseal/edgeseal/systemd"
)

// The service account and the paths `edgeseal service install` manages,
// relative to the root prefix (/ on a real system).
const (
	serviceUser  = "edgeseal"
	serviceGroup = "edgeseal"
	tpmGroup     = "tss"
	// apiGroup may connect to the agent's socket (api.socket_group in the
	// packaged agent.yaml); it is not serviceGroup, which may read
	// /etc/edgeseal and so the device's keys.
	apiGroup      = "edgeseal-api"
	unitDir       = "/etc/systemd/system"
	configDir     = "/etc/edgeseal"
	serviceBinary = "/usr/bin/edgeseal" // ExecStart= in the units
)

// stateDir is the unit's StateDirectory= for kind.
func stateDir(kind string) string {
	if kind == "archive" {
		return "/var/lib/edgeseal-archive"
	}
	return "/var/lib/edgeseal"
}

// serviceError is a failed step of `edgeseal service`.
type serviceError struct {
	Op  string // the step: "write unit", "useradd", "systemctl enable", ...
	Err error
}

func (e *serviceError) Error() string { return "service: " + e.Op + ": " + e.Err.Error() }
func (e *serviceError) Unwrap() error { return e.Err }

// errNotSystemd is wrapped when start/stop/status find no running systemd.
var errNotSystemd = errors.New("systemd is not the service manager here; edgeseal ships systemd units only")

// serviceEnv is what the service commands touch, injectable for tests.
type serviceEnv struct {
	root   string // "" for the real system; else a prefix, and no commands run
	exe    string // the binary to copy to /usr/bin/edgeseal when it is missing
	run    func(ctx context.Context, name string, args ...string) error
	stdout io.Writer
	log    *slog.Logger
}

// path maps an absolute system path under the root prefix.
func (e *serviceEnv) path(p string) string {
	if e.root == "" {
		return p
	}
	return filepath.Join(e.root, p)
}

// cmd runs a system command, or only logs it under a root prefix.
func (e *serviceEnv) cmd(ctx context.Context, name string, args ...string) error {
	if e.root != "" {
		e.log.Info("root prefix set: not running", "cmd", name+" "+strings.Join(args, " "))
		return nil
	}
	if err := e.run(ctx, name, args...); err != nil {
		return &serviceError{Op: name + " " + strings.Join(args, " "), Err: err}
	}
	return nil
}

// execRun runs a command, folding its output into the error.
func execRun(ctx context.Context, name string, args ...string) error {
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%w: %s", err, strings.TrimSpace(string(out)))
	}
	return nil
}

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
		return &serviceError{Op: "find own binary", Err: err}
	}
	env := &serviceEnv{root: *root, exe: exe, run: execRun, stdout: stdout, log: log}
	switch action {
	case "install":
		return serviceInstall(ctx, env, *kind)
	case "uninstall":
		return serviceUninstall(ctx, env, *kind, *purge)
	case "start", "stop", "status":
		if *root != "" {
			return usageErr("service %s: --root applies to install and uninstall only", action)
		}
		return serviceControl(action, *kind, stdout)
	}
	return usageErr("service: unknown action %q", action)
}

// serviceInstall writes the unit, creates the account and the directories,
// and enables the unit (it does not start it: the config comes first).
func serviceInstall(ctx context.Context, env *serviceEnv, kind string) error {
	name, text, err := systemd.Unit(kind)
	if err != nil {
		return err
	}
	if err := ensureUser(ctx, env, kind); err != nil {
		return err
	}
	uid, gid, err := env.ids()
	if err != nil {
		return err
	}
	if err := ensureBinary(env); err != nil {
		return err
	}
	// /etc/edgeseal root:edgeseal 0750: the daemon reads, only root writes.
	if err := ensureDir(env.path(configDir), 0o750, 0, gid); err != nil {
		return err
	}
	// The state directory edgeseal:edgeseal 0700 (systemd keeps it so).
	if err := ensureDir(env.path(stateDir(kind)), 0o700, uid, gid); err != nil {
		return err
	}
	unit := env.path(filepath.Join(unitDir, name))
	if err := os.MkdirAll(filepath.Dir(unit), 0o755); err != nil {
		return &serviceError{Op: "write unit", Err: err}
	}
	if err := fsutil.WriteFileAtomic(unit, []byte(text), 0o644); err != nil {
		return &serviceError{Op: "write unit", Err: err}
	}
	if err := env.cmd(ctx, "systemctl", "daemon-reload"); err != nil {
		return err
	}
	if err := env.cmd(ctx, "systemctl", "enable", name); err != nil {
		return err
	}
	cfg := filepath.Join(configDir, kind+".yaml")
	if _, err := os.Stat(env.path(cfg)); errors.Is(err, fs.ErrNotExist) {
		env.log.Warn("no config yet: write it before starting the service", "config", cfg)
	}
	fmt.Fprintf(env.stdout, "installed and enabled %s; configure %s, then: edgeseal service start --kind %s\n", name, cfg, kind)
	return nil
}

// serviceUninstall disables and stops the unit and removes it; --purge also
// removes the state directory, the config file and (when no other edgeseal
// unit remains) the account.
func serviceUninstall(ctx context.Context, env *serviceEnv, kind string, purge bool) error {
	name, _, err := systemd.Unit(kind)
	if err != nil {
		return err
	}
	unit := env.path(filepath.Join(unitDir, name))
	if _, err := os.Stat(unit); err == nil {
		if err := env.cmd(ctx, "systemctl", "disable", "--now", name); err != nil {
			return err
		}
	}
	if err := os.Remove(unit); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return &serviceError{Op: "remove unit", Err: err}
	}
	if err := env.cmd(ctx, "systemctl", "daemon-reload"); err != nil {
		return err
	}
	if !purge {
		fmt.Fprintf(env.stdout, "uninstalled %s; kept %s, %s and the %s user (--purge removes them)\n",
			name, stateDir(kind), configDir, serviceUser)
		return nil
	}
	if err := os.RemoveAll(env.path(stateDir(kind))); err != nil {
		return &serviceError{Op: "remove state", Err: err}
	}
	if err := os.Remove(env.path(filepath.Join(configDir, kind+".yaml"))); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return &serviceError{Op: "remove config", Err: err}
	}
	other := systemd.AgentUnitName
	if kind == "agent" {
		other = systemd.ArchiveUnitName
	}
	if _, err := os.Stat(env.path(filepath.Join(unitDir, other))); err == nil {
		fmt.Fprintf(env.stdout, "uninstalled and purged %s; kept %s and the %s user for %s\n", name, configDir, serviceUser, other)
		return nil
	}
	// Only an empty /etc/edgeseal goes: an operator's other files stay.
	if err := os.Remove(env.path(configDir)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		env.log.Warn("config directory kept", "dir", configDir, "err", err)
	}
	if _, err := user.Lookup(serviceUser); err == nil || env.root != "" {
		if err := env.cmd(ctx, "userdel", serviceUser); err != nil {
			return err
		}
	}
	fmt.Fprintf(env.stdout, "uninstalled and purged %s\n", name)
	return nil
}

// ensureUser creates the system user and group edgeseal, and for the agent
// the group edgeseal-api of the API's clients (the user joins it, to give
// the socket that group) and adds the user to tss (the owner group of
// /dev/tpmrm0) when that group exists.
func ensureUser(ctx context.Context, env *serviceEnv, kind string) error {
	if _, err := user.Lookup(serviceUser); err != nil || env.root != "" {
		group := []string{"--user-group"}
		if _, err := user.LookupGroup(serviceGroup); err == nil && env.root == "" {
			group = []string{"--gid", serviceGroup} // the group exists already
		}
		args := append([]string{"--system", "--no-create-home", "--home-dir", "/nonexistent",
			"--shell", "/usr/sbin/nologin"}, group...)
		if err := env.cmd(ctx, "useradd", append(args, serviceUser)...); err != nil {
			return err
		}
	}
	if kind != "agent" {
		return nil
	}
	// The unit's SupplementaryGroups= names apiGroup: it must exist.
	if _, err := user.LookupGroup(apiGroup); err != nil || env.root != "" {
		if err := env.cmd(ctx, "groupadd", "--system", apiGroup); err != nil {
			return err
		}
	}
	if err := env.cmd(ctx, "usermod", "--append", "--groups", apiGroup, serviceUser); err != nil {
		return err
	}
	if _, err := user.LookupGroup(tpmGroup); err != nil && env.root == "" {
		env.log.Warn("no tss group: is tpm2-tools or tpm-udev installed? The agent needs /dev/tpmrm0", "group", tpmGroup)
		return nil
	}
	return env.cmd(ctx, "usermod", "--append", "--groups", tpmGroup, serviceUser)
}

// ids returns the account's uid and gid, or -1 (leave ownership alone)
// under a root prefix, where the host's accounts mean nothing.
func (e *serviceEnv) ids() (uid, gid int, err error) {
	if e.root != "" {
		return -1, -1, nil
	}
	u, err := user.Lookup(serviceUser)
	if err != nil {
		return 0, 0, &serviceError{Op: "look up user", Err: err}
	}
	g, err := user.LookupGroup(serviceGroup)
	if err != nil {
		return 0, 0, &serviceError{Op: "look up group", Err: err}
	}
	uid, err = strconv.Atoi(u.Uid)
	if err != nil {
		return 0, 0, &serviceError{Op: "look up user", Err: err}
	}
	gid, err = strconv.Atoi(g.Gid)
	if err != nil {
		return 0, 0, &serviceError{Op: "look up group", Err: err}
	}
	return uid, gid, nil
}

// ensureDir creates dir (or tightens an existing one) with mode and owner;
// uid or gid -1 leaves that id alone.
func ensureDir(dir string, mode fs.FileMode, uid, gid int) error {
	if err := os.MkdirAll(dir, mode); err != nil {
		return &serviceError{Op: "create " + dir, Err: err}
	}
	if err := os.Chmod(dir, mode); err != nil {
		return &serviceError{Op: "chmod " + dir, Err: err}
	}
	if uid != -1 || gid != -1 {
		if err := os.Chown(dir, uid, gid); err != nil {
			return &serviceError{Op: "chown " + dir, Err: err}
		}
	}
	return nil
}

// ensureBinary copies the running binary to /usr/bin/edgeseal (the units'
// ExecStart=) unless one is there, as a package would have put it.
func ensureBinary(env *serviceEnv) error {
	dst := env.path(serviceBinary)
	if _, err := os.Stat(dst); err == nil {
		return nil
	}
	data, err := os.ReadFile(env.exe)
	if err != nil {
		return &serviceError{Op: "copy binary", Err: err}
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return &serviceError{Op: "copy binary", Err: err}
	}
	if err := fsutil.WriteFileAtomic(dst, data, 0o755); err != nil {
		return &serviceError{Op: "copy binary", Err: err}
	}
	env.log.Info("copied the binary", "from", env.exe, "to", serviceBinary)
	return nil
}

// nopProgram satisfies service.Interface: kardianos/service only controls
// the unit here (the daemons run through `edgeseal agent|archive`).
type nopProgram struct{}

func (nopProgram) Start(service.Service) error { return nil }
func (nopProgram) Stop(service.Service) error  { return nil }

// serviceControl starts, stops or reports the unit through kardianos/service
// (systemctl start|stop|is-active under systemd).
func serviceControl(action, kind string, stdout io.Writer) error {
	name, _, err := systemd.Unit(kind)
	if err != nil {
		return err
	}
	s, err := service.New(nopProgram{}, &service.Config{Name: strings.TrimSuffix(name, ".service")})
	if err != nil {
		return &serviceError{Op: action, Err: err}
	}
	if p := s.Platform(); p != "linux-systemd" {
		return &serviceError{Op: action, Err: fmt.Errorf("%w (found %s)", errNotSystemd, p)}
	}
	switch action {
	case "start":
		err = s.Start()
	case "stop":
		err = s.Stop()
	case "status":
		var st service.Status
		st, err = s.Status()
		switch {
		case errors.Is(err, service.ErrNotInstalled):
			fmt.Fprintf(stdout, "%s: not installed\n", name)
			return &serviceError{Op: action, Err: err}
		case err != nil:
			fmt.Fprintf(stdout, "%s: %v (see: systemctl status %s; journalctl -u %s)\n", name, err, name, name)
		case st == service.StatusRunning:
			fmt.Fprintf(stdout, "%s: running\n", name)
		case st == service.StatusStopped:
			fmt.Fprintf(stdout, "%s: stopped\n", name)
		default:
			fmt.Fprintf(stdout, "%s: unknown\n", name)
		}
	}
	if err != nil {
		return &serviceError{Op: action, Err: err}
	}
	return nil
}
