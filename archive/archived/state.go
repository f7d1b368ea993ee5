package archived

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/edgeseal/edgeseal/archive"
	"github.com/edgeseal/edgeseal/archive/config"
	"github.com/edgeseal/edgeseal/archive/state"
	"github.com/edgeseal/edgeseal/internal/fsutil"
)

// stateEngineFile (in data_dir) names the chain-state engine
// (archive_state.engine) the archive last opened with.
const stateEngineFile = "state-engine"

// openState opens the devices' chain-state store archive_state chooses:
// nil for badger (archive.Open opens its own under data_dir/state), the
// SQL store on the database of archive_state.mysql_dsn_file for mysql
// (the caller closes it after the archive). When the engine is not the
// one the archive last opened with (data_dir/state-engine; none: badger,
// the only engine before), the new store does not hold what the
// archive's index mark says the store holds: the mark is removed
// (archive.RefillChainState) so that Open reads the whole index once and
// fills the store. The caller calls opened once archive.Open succeeded:
// it records the engine (not before: an Open refused because the daemon
// runs leaves the engine unrecorded, and the daemon's next start, after
// it rewrote the mark at its stop, removes it again).
func openState(ctx context.Context, cfg *config.Config) (st state.Store, opened func() error, err error) {
	engine := cfg.ArchiveState.Engine
	switch engine {
	case config.StateEngineBadger, "":
		engine = config.StateEngineBadger
	case config.StateEngineMySQL:
		dsn, err := readSecretFile(cfg.ArchiveState.MySQLDSNFile)
		if err != nil {
			return nil, nil, fmt.Errorf("archive_state.mysql_dsn_file: %w", err)
		}
		s, err := state.OpenMySQL(ctx, dsn)
		if err != nil {
			return nil, nil, fmt.Errorf("archive_state: %w", err)
		}
		// One lease connection per device with bundles in flight: no
		// more than the subscriber's lanes let in at once.
		s.SetMaxLeases(cfg.MQTT.LeaseConns())
		st = s
	default:
		return nil, nil, fmt.Errorf("archive_state.engine %q: want badger or mysql", engine)
	}
	record, err := switchStateEngine(cfg.DataDir, engine)
	if err != nil {
		if st != nil {
			_ = st.Close()
		}
		return nil, nil, err
	}
	return st, record, nil
}

// switchStateEngine removes dir's index mark when engine is not the one
// dir's state-engine file names, and returns the function that records
// engine there (nothing to do when it is recorded already).
func switchStateEngine(dir, engine string) (func() error, error) {
	p := filepath.Join(dir, stateEngineFile)
	last := config.StateEngineBadger
	b, err := fsutil.ReadRegular(p, 64)
	switch {
	case err == nil:
		last = strings.TrimSpace(string(b))
	case errors.Is(err, fs.ErrNotExist):
		if _, serr := os.Stat(dir); errors.Is(serr, fs.ErrNotExist) {
			last = engine // a new archive: Open creates dir
		}
	default:
		return nil, fmt.Errorf("archive_state: %w", err)
	}
	if last == engine && err == nil {
		return func() error { return nil }, nil
	}
	if last != engine {
		if err := archive.RefillChainState(dir); err != nil {
			return nil, fmt.Errorf("archive_state: engine %s, was %s: %w", engine, last, err)
		}
	}
	return func() error {
		if err := fsutil.WriteFileAtomic(p, []byte(engine+"\n"), 0o600); err != nil {
			return fmt.Errorf("archive_state: %w", err)
		}
		return nil
	}, nil
}

// shareRegistry keeps the device registry and the operator statement
// queue in the shared database when the chain state is there
// (archive_state.engine mysql): every replica and every operator command
// on its host then sees one registry. It sets opts.Devices and
// opts.Statements; with the Badger engine it does nothing (devices.json
// and the pending folder in data_dir).
func shareRegistry(ctx context.Context, cfg *config.Config, opts *archive.Options) error {
	sq, ok := opts.State.(*state.SQL)
	if !ok {
		return nil
	}
	reg, err := sharedRegistry(ctx, cfg, sq)
	if err != nil {
		return err
	}
	if opts.Devices, err = archive.OpenDevicesOn(reg, opts.Logger, opts.Now); err != nil {
		return err
	}
	opts.Statements = sq.Statements()
	return nil
}

// sharedRegistry is the registry in sq's database, filled from
// data_dir/devices.json when it was never written (an archive that
// moves to the mysql engine keeps its devices; the first replica to
// start brings its file, the others' files are not read again).
func sharedRegistry(ctx context.Context, cfg *config.Config, sq *state.SQL) (state.Registry, error) {
	reg := sq.Registry()
	err := archive.SeedRegistry(ctx, reg, filepath.Join(cfg.DataDir, "devices.json"))
	if err != nil {
		return nil, fmt.Errorf("archive_state: device registry: %w", err)
	}
	return reg, nil
}

// OpenSharedState opens the SQL store archive_state names for an
// operator command when its engine is mysql (nil, nil with badger): the
// caller keeps the device registry (SharedDevices) and queues operator
// statements there, and closes it.
func OpenSharedState(ctx context.Context, cfg *config.Config) (*state.SQL, error) {
	if cfg.ArchiveState.Engine != config.StateEngineMySQL {
		return nil, nil
	}
	dsn, err := readSecretFile(cfg.ArchiveState.MySQLDSNFile)
	if err != nil {
		return nil, fmt.Errorf("archive_state.mysql_dsn_file: %w", err)
	}
	s, err := state.OpenMySQL(ctx, dsn)
	if err != nil {
		return nil, fmt.Errorf("archive_state: %w", err)
	}
	return s, nil
}

// SharedDevices opens the device registry in sq's database (filled from
// data_dir/devices.json when never written, as the daemon does).
func SharedDevices(ctx context.Context, cfg *config.Config, sq *state.SQL, log *slog.Logger) (*archive.Devices, error) {
	reg, err := sharedRegistry(ctx, cfg, sq)
	if err != nil {
		return nil, err
	}
	return archive.OpenDevicesOn(reg, log, nil)
}
