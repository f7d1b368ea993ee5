package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/edgeseal/edgeseal/archive"
	"github.com/edgeseal/edgeseal/archive/archived"
	"github.com/edgeseal/edgeseal/archive/config"
	"github.com/edgeseal/edgeseal/internal/daemonlog"
	"github.com/edgeseal/edgeseal/internal/sdnotify"
)

// defaultArchiveConfig is where the archive commands look without --config.
const defaultArchiveConfig = "/etc/edgeseal/archive.yaml"

// cmdArchive dispatches `edgeseal archive ...`: the daemon, or one of the
// operator commands.
func cmdArchive(ctx context.Context, args []string, stdout io.Writer, log *slog.Logger) error {
	if len(args) > 0 {
		switch args[0] {
		case "devices":
			if len(args) > 1 && args[1] == "rekey" {
				return cmdArchiveRekey(ctx, args[2:], stdout, log)
			}
			return cmdArchiveDevices(ctx, args[1:], stdout, log)
		case "enroll-file":
			return cmdArchiveEnrollFile(ctx, args[1:], stdout, log)
		case "import":
			return cmdArchiveImport(ctx, args[1:], stdout, log)
		case "check":
			return cmdArchiveCheck(ctx, args[1:], stdout, log)
		case "migrate-log":
			return cmdArchiveMigrateLog(ctx, args[1:], stdout, log)
		case "key":
			return cmdArchiveKey(ctx, args[1:], stdout, log)
		case "content-key":
			return cmdArchiveContentKey(ctx, args[1:], stdout, log)
		case "operator":
			return cmdArchiveOperator(args[1:], stdout)
		case "hold":
			return cmdArchiveHold(ctx, args[1:], stdout, log)
		case "purge":
			return cmdArchivePurge(ctx, args[1:], stdout, log)
		case "users":
			return cmdArchiveUsers(args[1:], os.Stdin, stdout)
		}
	}
	fs := flag.NewFlagSet("archive", flag.ContinueOnError)
	cfgPath := fs.String("config", "", "the archive's YAML config file (required)")
	if pos, err := parseInterleaved(fs, args); err != nil {
		return err
	} else if len(pos) > 0 {
		return usageErr("archive: unexpected argument %q", pos[0])
	}
	if *cfgPath == "" {
		return usageErr("archive: --config is required")
	}
	cfg, err := config.Load(*cfgPath)
	if err != nil {
		return err
	}
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.Log.Level)) // validated by Load
	log = daemonlog.New(cfg.Log.Format, level, os.Getenv)
	return archived.Run(sdnotify.NewContext(ctx, sdnotify.New(os.Getenv, log.With("component", "sdnotify"))), cfg, archived.Options{Logger: log})
}

// archiveFlags are the flags every operator command takes.
type archiveFlags struct {
	fs      *flag.FlagSet
	cfgPath *string
	dataDir *string
}

func newArchiveFlags(name string) archiveFlags {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	return archiveFlags{fs: fs,
		cfgPath: fs.String("config", defaultArchiveConfig, "the archive's YAML config file"),
		dataDir: fs.String("data-dir", "", "the archive's data directory (instead of the config's)"),
	}
}

// config returns the archive config (--data-dir alone needs no file).
func (f archiveFlags) config() (*config.Config, error) {
	if *f.dataDir != "" {
		c := config.Default()
		c.DataDir = *f.dataDir
		c.KeyFile = filepath.Join(c.DataDir, "archive.key")
		return c, nil
	}
	return config.Load(*f.cfgPath)
}

// checkDataDir refuses (exit 2) a data dir that is not there or not a
// folder, for a command that must find an archive's, not make one.
func (f archiveFlags) checkDataDir(cmd string) error {
	cfg, err := f.config()
	if err != nil {
		return err
	}
	fi, err := os.Stat(cfg.DataDir)
	if err != nil {
		return usageErr("%s: data dir: %v", cmd, err)
	}
	if !fi.IsDir() {
		return usageErr("%s: data dir %s: not a folder", cmd, cfg.DataDir)
	}
	return nil
}

// devices opens the device registry of the config: devices.json in
// data_dir, or with archive_state.engine mysql the registry in that
// database, shared with the running replicas. done closes what it
// opened.
func (f archiveFlags) devices(ctx context.Context, log *slog.Logger) (d *archive.Devices, done func(), err error) {
	cfg, err := f.config()
	if err != nil {
		return nil, nil, err
	}
	log = atConfigLevel(log, cfg.Log.Level)
	if err := os.MkdirAll(cfg.DataDir, 0o750); err != nil {
		return nil, nil, err
	}
	done = func() {}
	sq, err := archived.OpenSharedState(ctx, cfg)
	switch {
	case err != nil:
		return nil, nil, err
	case sq != nil:
		done = func() { _ = sq.Close() }
		d, err = archived.SharedDevices(ctx, cfg, sq, log)
	default:
		d, err = archive.OpenDevices(filepath.Join(cfg.DataDir, "devices.json"), log, nil)
	}
	if err != nil {
		done()
		return nil, nil, err
	}
	roots, err := archived.LoadEKRoots(cfg)
	if err != nil {
		done()
		return nil, nil, err
	}
	d.SetEKRoots(roots)
	d.OnEvict(func(_ context.Context, e archive.Evicted) {
		log.Warn("ALERT "+archive.KindEnrollmentEvicted, "severity", archive.SeverityWarning, "device", e.Device,
			"reasons", []string{"pending key " + e.KeyID + " (received " + e.ReceivedAt + ") dropped: too many pending requests " + e.Reason})
	})
	return d, done, nil
}

// openStoppedArchive opens the configured key (key_file's, or the token's
// when key names one) and, signed by it, the archive of a stopped daemon
// for an operator command (what: "an import"); closeAll closes both.
func openStoppedArchive(ctx context.Context, cfg *config.Config, log *slog.Logger, what string) (a *archive.Archive, closeAll func(), err error) {
	key, closeKey, _, err := archived.OpenKey(cfg)
	if err != nil {
		return nil, nil, err
	}
	wrap, closeWrap, err := archived.OpenContentKeyWrap(cfg)
	if err != nil {
		closeKey()
		return nil, nil, err
	}
	a, closeArchive, err := archived.Open(ctx, cfg, key, wrap, log)
	if err != nil {
		closeWrap()
		closeKey()
		return nil, nil, fmt.Errorf("%w (%s needs the archive daemon stopped)", err, what)
	}
	return a, func() { _ = closeArchive(); closeWrap(); closeKey() }, nil
}
