package systemd

import (
	"context"
	"errors"
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
)

// The service account and the paths Install manages, relative to the
// root prefix (/ on a real system).
const (
	serviceUser  = "edgeseal"
	serviceGroup = "edgeseal"
	tpmGroup     = "tss"
	// apiGroup may connect to the agent's socket (api.socket_group in the
	// packaged agent.yaml); it is not serviceGroup, which may read
	// /etc/edgeseal and so the device's keys.
	apiGroup  = "edgeseal-api"
	UnitDir   = "/etc/systemd/system"
	ConfigDir = "/etc/edgeseal"
	Binary    = "/usr/bin/edgeseal" // ExecStart= in the units
)

// StateDir is the unit's StateDirectory= for kind.
func StateDir(kind string) string {
	if kind == "archive" {
		return "/var/lib/edgeseal-archive"
	}
	return "/var/lib/edgeseal"
}

// Error is a failed step of installing, removing or controlling a unit.
type Error struct {
	Op  string // the step: "write unit", "useradd", "systemctl enable", ...
	Err error
}

func (e *Error) Error() string { return "service: " + e.Op + ": " + e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

// ErrNotSystemd is wrapped when start/stop/status find no running systemd.
var ErrNotSystemd = errors.New("systemd is not the service manager here; edgeseal ships systemd units only")

// Env is what Install and Uninstall touch, injectable for tests.
type Env struct {
	Root   string                                                       // "" for the real system; else a prefix, and no commands run
	Exe    string                                                       // the binary to copy to /usr/bin/edgeseal when it is missing
	Run    func(ctx context.Context, name string, args ...string) error // nil: ExecRun
	Stdout io.Writer                                                    // what was done, for the operator
	Logger *slog.Logger                                                 // warnings
}

// Path maps an absolute system path under the root prefix.
func (e *Env) Path(p string) string {
	if e.Root == "" {
		return p
	}
	return filepath.Join(e.Root, p)
}

// cmd runs a system command, or only logs it under a root prefix.
func (e *Env) cmd(ctx context.Context, name string, args ...string) error {
	if e.Root != "" {
		e.Logger.Info("root prefix set: not running", "cmd", name+" "+strings.Join(args, " "))
		return nil
	}
	run := e.Run
	if run == nil {
		run = ExecRun
	}
	if err := run(ctx, name, args...); err != nil {
		return &Error{Op: name + " " + strings.Join(args, " "), Err: err}
	}
	return nil
}

// ExecRun runs a command, folding its output into the error.
func ExecRun(ctx context.Context, name string, args ...string) error {
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%w: %s", err, strings.TrimSpace(string(out)))
	}
	return nil
}

// Install installs the unit of kind ("agent" or "archive"): it writes
// the unit, creates the account and the directories,
// and enables the unit (it does not start it: the config comes first).
func Install(ctx context.Context, env *Env, kind string) error {
	name, text, err := Unit(kind)
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
	if err := ensureDir(env.Path(ConfigDir), 0o750, 0, gid); err != nil {
		return err
	}
	// The state directory edgeseal:edgeseal 0700 (systemd keeps it so).
	if err := ensureDir(env.Path(StateDir(kind)), 0o700, uid, gid); err != nil {
		return err
	}
	unit := env.Path(filepath.Join(UnitDir, name))
	if err := os.MkdirAll(filepath.Dir(unit), 0o755); err != nil {
		return &Error{Op: "write unit", Err: err}
	}
	if err := fsutil.WriteFileAtomic(unit, []byte(text), 0o644); err != nil {
		return &Error{Op: "write unit", Err: err}
	}
	if err := env.cmd(ctx, "systemctl", "daemon-reload"); err != nil {
		return err
	}
	if err := env.cmd(ctx, "systemctl", "enable", name); err != nil {
		return err
	}
	cfg := filepath.Join(ConfigDir, kind+".yaml")
	if _, err := os.Stat(env.Path(cfg)); errors.Is(err, fs.ErrNotExist) {
		env.Logger.Warn("no config yet: write it before starting the service", "config", cfg)
	}
	fmt.Fprintf(env.Stdout, "installed and enabled %s; configure %s, then: edgeseal service start --kind %s\n", name, cfg, kind)
	return nil
}

// Uninstall disables and stops the unit of kind and removes it; purge also
// removes the state directory, the config file and (when no other edgeseal
// unit remains) the account.
func Uninstall(ctx context.Context, env *Env, kind string, purge bool) error {
	name, _, err := Unit(kind)
	if err != nil {
		return err
	}
	unit := env.Path(filepath.Join(UnitDir, name))
	if _, err := os.Stat(unit); err == nil {
		if err := env.cmd(ctx, "systemctl", "disable", "--now", name); err != nil {
			return err
		}
	}
	if err := os.Remove(unit); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return &Error{Op: "remove unit", Err: err}
	}
	if err := env.cmd(ctx, "systemctl", "daemon-reload"); err != nil {
		return err
	}
	if !purge {
		fmt.Fprintf(env.Stdout, "uninstalled %s; kept %s, %s and the %s user (--purge removes them)\n",
			name, StateDir(kind), ConfigDir, serviceUser)
		return nil
	}
	if err := os.RemoveAll(env.Path(StateDir(kind))); err != nil {
		return &Error{Op: "remove state", Err: err}
	}
	if err := os.Remove(env.Path(filepath.Join(ConfigDir, kind+".yaml"))); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return &Error{Op: "remove config", Err: err}
	}
	other := AgentUnitName
	if kind == "agent" {
		other = ArchiveUnitName
	}
	if _, err := os.Stat(env.Path(filepath.Join(UnitDir, other))); err == nil {
		fmt.Fprintf(env.Stdout, "uninstalled and purged %s; kept %s and the %s user for %s\n", name, ConfigDir, serviceUser, other)
		return nil
	}
	// Only an empty /etc/edgeseal goes: an operator's other files stay.
	if err := os.Remove(env.Path(ConfigDir)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		env.Logger.Warn("config directory kept", "dir", ConfigDir, "err", err)
	}
	if _, err := user.Lookup(serviceUser); err == nil || env.Root != "" {
		if err := env.cmd(ctx, "userdel", serviceUser); err != nil {
			return err
		}
	}
	fmt.Fprintf(env.Stdout, "uninstalled and purged %s\n", name)
	return nil
}

// ensureUser creates the system user and group edgeseal, and for the agent
// the group edgeseal-api of the API's clients (the user joins it, to give
// the socket that group) and adds the user to tss (the owner group of
// /dev/tpmrm0) when that group exists.
func ensureUser(ctx context.Context, env *Env, kind string) error {
	if _, err := user.Lookup(serviceUser); err != nil || env.Root != "" {
		group := []string{"--user-group"}
		if _, err := user.LookupGroup(serviceGroup); err == nil && env.Root == "" {
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
	if _, err := user.LookupGroup(apiGroup); err != nil || env.Root != "" {
		if err := env.cmd(ctx, "groupadd", "--system", apiGroup); err != nil {
			return err
		}
	}
	if err := env.cmd(ctx, "usermod", "--append", "--groups", apiGroup, serviceUser); err != nil {
		return err
	}
	if _, err := user.LookupGroup(tpmGroup); err != nil && env.Root == "" {
		env.Logger.Warn("no tss group: is tpm2-tools or tpm-udev installed? The agent needs /dev/tpmrm0", "group", tpmGroup)
		return nil
	}
	return env.cmd(ctx, "usermod", "--append", "--groups", tpmGroup, serviceUser)
}

// ids returns the account's uid and gid, or -1 (leave ownership alone)
// under a root prefix, where the host's accounts mean nothing.
func (e *Env) ids() (uid, gid int, err error) {
	if e.Root != "" {
		return -1, -1, nil
	}
	u, err := user.Lookup(serviceUser)
	if err != nil {
		return 0, 0, &Error{Op: "look up user", Err: err}
	}
	g, err := user.LookupGroup(serviceGroup)
	if err != nil {
		return 0, 0, &Error{Op: "look up group", Err: err}
	}
	uid, err = strconv.Atoi(u.Uid)
	if err != nil {
		return 0, 0, &Error{Op: "look up user", Err: err}
	}
	gid, err = strconv.Atoi(g.Gid)
	if err != nil {
		return 0, 0, &Error{Op: "look up group", Err: err}
	}
	return uid, gid, nil
}

// ensureDir creates dir (or tightens an existing one) with mode and owner;
// uid or gid -1 leaves that id alone.
func ensureDir(dir string, mode fs.FileMode, uid, gid int) error {
	if err := os.MkdirAll(dir, mode); err != nil {
		return &Error{Op: "create " + dir, Err: err}
	}
	if err := os.Chmod(dir, mode); err != nil {
		return &Error{Op: "chmod " + dir, Err: err}
	}
	if uid != -1 || gid != -1 {
		if err := os.Chown(dir, uid, gid); err != nil {
			return &Error{Op: "chown " + dir, Err: err}
		}
	}
	return nil
}

// ensureBinary copies the running binary to /usr/bin/edgeseal (the units'
// ExecStart=) unless one is there, as a package would have put it.
func ensureBinary(env *Env) error {
	dst := env.Path(Binary)
	if _, err := os.Stat(dst); err == nil {
		return nil
	}
	data, err := os.ReadFile(env.Exe)
	if err != nil {
		return &Error{Op: "copy binary", Err: err}
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return &Error{Op: "copy binary", Err: err}
	}
	if err := fsutil.WriteFileAtomic(dst, data, 0o755); err != nil {
		return &Error{Op: "copy binary", Err: err}
	}
	env.Logger.Info("copied the binary", "from", env.Exe, "to", Binary)
	return nil
}

// nopProgram satisfies service.Interface: kardianos/service only controls
// the unit here (the daemons run through `edgeseal agent|archive`).
type nopProgram struct{}

func (nopProgram) Start(service.Service) error { return nil }
func (nopProgram) Stop(service.Service) error  { return nil }

// Control starts, stops or reports (action) the unit of kind through kardianos/service
// (systemctl start|stop|is-active under systemd).
func Control(action, kind string, stdout io.Writer) error {
	name, _, err := Unit(kind)
	if err != nil {
		return err
	}
	s, err := service.New(nopProgram{}, &service.Config{Name: strings.TrimSuffix(name, ".service")})
	if err != nil {
		return &Error{Op: action, Err: err}
	}
	if p := s.Platform(); p != "linux-systemd" {
		return &Error{Op: action, Err: fmt.Errorf("%w (found %s)", ErrNotSystemd, p)}
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
			return &Error{Op: action, Err: err}
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
		return &Error{Op: action, Err: err}
	}
	return nil
}
