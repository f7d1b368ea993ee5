package drainbench

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/pprof"
	"testing"
	"time"

	"github.com/edgeseal/edgeseal/archive"
	"github.com/edgeseal/edgeseal/archive/sqlframes"
	"github.com/edgeseal/edgeseal/archive/state"
	"github.com/edgeseal/edgeseal/sync"
)

// A replica of BenchmarkReplicas runs in a child process (this test
// binary again) as the daemon runs one with archive_log and
// archive_state on MySQL/MariaDB and mqtt.group set: its own data
// directory, the shared log and chain-state databases, the shared
// object store, the shared subscription.
const (
	childReplica = "replica" // an archive replica and its sync subscriber

	childLogDSN   = "EDGESEAL_DRAINBENCH_LOG_DSN"   // replica: archive_log's database
	childStateDSN = "EDGESEAL_DRAINBENCH_STATE_DSN" // replica: archive_state's database
	childObjects  = "EDGESEAL_DRAINBENCH_OBJECTS"   // replica: the shared objects directory
	childClientID = "EDGESEAL_DRAINBENCH_CLIENT_ID" // replica: its MQTT client id
)

// replicaGroup is the replicas' shared subscription group (mqtt.group).
const replicaGroup = "archive"

// replicaConfig is what a replica (and the benchmark, enrolling the
// devices in its directory) opens.
type replicaConfig struct {
	dir, logDSN, stateDSN, objects string
	key                            ed25519.PrivateKey
}

// openReplica opens the archive of c on the replicated engines; closeAll
// closes it and then its chain-state store.
func openReplica(ctx context.Context, c replicaConfig) (ar *archive.Archive, closeAll func() error, err error) {
	st, err := state.OpenMySQL(ctx, c.stateDSN)
	if err != nil {
		return nil, nil, err
	}
	objs, err := archive.NewFSStore(c.objects)
	if err != nil {
		_ = st.Close()
		return nil, nil, err
	}
	ar, err = archive.Open(ctx, archive.Options{Dir: c.dir, Key: c.key, LogEngine: archive.LogEngineMySQL, LogDSN: c.logDSN,
		State: st, Objects: objs})
	if err != nil {
		_ = st.Close()
		return nil, nil, err
	}
	return ar, func() error { return errors.Join(ar.Close(), st.Close()) }, nil
}

// replicaStats is what a replica child measured between start and stop.
type replicaStats struct {
	archiveStats
	accepted, held, duplicates, refused, alarms uint64
}

// startReplicaChild runs replica c, subscribed in replicaGroup on the
// broker at url as clientID, in a child process.
func startReplicaChild(b *testing.B, url, clientID string, c replicaConfig) *child {
	return startChild(b, childReplica, childURL+"="+url, childDir+"="+c.dir, childKey+"="+hex.EncodeToString(c.key),
		childLogDSN+"="+c.logDSN, childStateDSN+"="+c.stateDSN, childObjects+"="+c.objects, childClientID+"="+clientID)
}

// replicaStats ends a replica child's timed span and reads what it
// measured.
func (c *child) replicaStats(b *testing.B) replicaStats {
	c.send(b, "stop")
	n := c.expect(b, "stats")
	if len(n) != 9 {
		b.Fatalf("replica child: stats %v", n)
	}
	return replicaStats{
		archiveStats: archiveStats{time.Duration(n[0]), time.Duration(n[1]), time.Duration(n[2]), uint64(n[3]), 0, 0},
		accepted:     uint64(n[4]), held: uint64(n[5]), duplicates: uint64(n[6]), refused: uint64(n[7]), alarms: uint64(n[8]),
	}
}

// writeGoroutines writes the stacks of every goroutine (pprof's
// goroutine profile, debug=1: counted by stack) to the file
// EDGESEAL_RBENCH_GOROUTINES names, suffixed with the client id: where
// the replica's goroutines wait when the drain ends (or is stopped).
func writeGoroutines(id string) error {
	f := os.Getenv("EDGESEAL_RBENCH_GOROUTINES")
	if f == "" {
		return nil
	}
	w, err := os.Create(f + "." + id)
	if err != nil {
		return err
	}
	defer w.Close()
	return pprof.Lookup("goroutine").WriteTo(w, 1)
}

// replicaChild opens the replica, starts its subscriber in the group and
// says ready; "start" starts its timed span (and the CPU profile
// EDGESEAL_RBENCH_CPUPROFILE names, suffixed with the client id), "stop"
// ends it (writing the goroutines' stacks where
// EDGESEAL_RBENCH_GOROUTINES says) and answers "stats cpu-ns admit-ns receive-ns log-size
// accepted held duplicates refused alarms" (the counters over the span).
func replicaChild(in io.Reader, out io.Writer) error {
	key, err := hex.DecodeString(os.Getenv(childKey))
	if err != nil || len(key) != ed25519.PrivateKeySize {
		return fmt.Errorf("key: %v", err)
	}
	ctx := context.Background()
	ar, closeAr, err := openReplica(ctx, replicaConfig{dir: os.Getenv(childDir), logDSN: os.Getenv(childLogDSN),
		stateDSN: os.Getenv(childStateDSN), objects: os.Getenv(childObjects), key: ed25519.PrivateKey(key)})
	if err != nil {
		return err
	}
	defer closeAr()
	id := os.Getenv(childClientID)
	// The daemon's subscriber takes the default MaxPending;
	// EDGESEAL_RBENCH_MAX_PENDING sets another, to see what bounds a
	// replica.
	// As the daemon with archive_state.engine mysql: partial bundles in
	// the chain-state database (EDGESEAL_RBENCH_MEM_FRAMES=1: in memory,
	// as before, to show the difference).
	var frames sync.FrameStore
	if os.Getenv("EDGESEAL_RBENCH_MEM_FRAMES") != "1" {
		fs, err := sqlframes.OpenMySQL(ctx, os.Getenv(childStateDSN), sync.AssemblerLimits{})
		if err != nil {
			return err
		}
		defer fs.Close()
		frames = fs
	}
	stop, err := groupSubscriber(os.Getenv(childURL), ar, id, replicaGroup, envInt("EDGESEAL_RBENCH_MAX_PENDING"), frames)
	if err != nil {
		return err
	}
	defer stop()
	fmt.Fprintln(out, "ready")
	sc := bufio.NewScanner(in)
	var cpu0 time.Duration
	var st0 archive.Stats
	for sc.Scan() {
		switch sc.Text() {
		case "start":
			if f := os.Getenv("EDGESEAL_RBENCH_CPUPROFILE"); f != "" {
				w, err := os.Create(f + "." + id)
				if err != nil {
					return err
				}
				defer w.Close()
				if hz := envInt("EDGESEAL_DRAIN_PROFILE_HZ"); hz > 0 {
					runtime.SetCPUProfileRate(hz)
				}
				if err := pprof.StartCPUProfile(w); err != nil {
					return err
				}
			}
			admitNanos.Store(0)
			receiveNanos.Store(0)
			st0 = ar.Stats()
			if cpu0, err = selfCPU(); err != nil {
				return err
			}
		case "stop":
			cpu, err := selfCPU()
			if err != nil {
				return err
			}
			pprof.StopCPUProfile()
			if err := writeGoroutines(id); err != nil {
				return err
			}
			s := ar.Stats()
			fmt.Fprintf(out, "stats %d %d %d %d %d %d %d %d %d\n", cpu-cpu0, admitNanos.Load(), receiveNanos.Load(), ar.LogSize(),
				s.Accepted-st0.Accepted, s.Held-st0.Held, s.Duplicates-st0.Duplicates, s.Refused-st0.Refused, s.Alarms-st0.Alarms)
		default:
			return fmt.Errorf("command %q", sc.Text())
		}
	}
	return sc.Err()
}
