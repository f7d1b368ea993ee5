//go:build cgo

package simulator

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"github.com/google/go-tpm-tools/simulator"
	"github.com/google/go-tpm/tpm2/transport"

	"github.com/edgeseal/edgeseal/tpm"
)

// Warning is the text a caller should log loudly when the simulator is used.
const Warning = "in-process TPM simulator with a seed stored in a plain file: INSECURE, for development and tests only"

const seedFile = "seed"

// ErrBusy is returned by Open while another simulator is open in the
// process (go-tpm-tools would otherwise block until it is closed).
var ErrBusy = errors.New("simulator: already open in this process")

// open guards the process-wide simulator.
var open sync.Mutex

// Sim is an open simulator. It implements tpm.Transport and
// Insecure() string, which tpm.Open uses to log the warning.
type Sim struct {
	tpm.Transport
	sim    *simulator.Simulator
	Seed   int64
	closed bool
}

// Close shuts the simulator down and lets another Open proceed.
func (s *Sim) Close() error {
	if s.closed {
		return simulator.ErrUsingClosedSimulator
	}
	s.closed = true
	defer open.Unlock()
	return s.Transport.Close()
}

// Insecure returns Warning.
func (*Sim) Insecure() string { return Warning }

// Reset powers the simulator off and on, as a host reboot would: PCRs
// reset and resetCount rises. The caller must reopen its tpm.TPM.
func (s *Sim) Reset() error {
	if err := s.sim.Reset(); err != nil {
		return fmt.Errorf("simulator: reset: %w", err)
	}
	return nil
}

// Open starts the simulator with the seed kept in dir/seed, creating dir
// and a random seed on first use.
func Open(dir string) (tpm.Transport, error) {
	s, err := OpenSim(dir)
	if err != nil {
		return nil, err
	}
	return s, nil
}

// OpenSim is Open returning the concrete type.
func OpenSim(dir string) (*Sim, error) {
	seed, err := loadSeed(dir)
	if err != nil {
		return nil, err
	}
	if !open.TryLock() {
		return nil, ErrBusy
	}
	sim, err := simulator.GetWithFixedSeedInsecure(seed)
	if err != nil {
		open.Unlock()
		return nil, fmt.Errorf("simulator: start: %w", err)
	}
	return &Sim{Transport: transport.FromReadWriteCloser(sim), sim: sim, Seed: seed}, nil
}

// loadSeed reads dir/seed, or creates it with a random seed.
func loadSeed(dir string) (int64, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return 0, fmt.Errorf("simulator: %w", err)
	}
	path := filepath.Join(dir, seedFile)
	b, err := os.ReadFile(path)
	if err == nil {
		return ParseSeed(b)
	}
	if !errors.Is(err, os.ErrNotExist) {
		return 0, fmt.Errorf("simulator: %w", err)
	}
	var r [8]byte
	if _, err := rand.Read(r[:]); err != nil {
		return 0, fmt.Errorf("simulator: seed: %w", err)
	}
	seed := int64(binary.BigEndian.Uint64(r[:]) &^ (1 << 63))
	if err := writeDurable(dir, seedFile, []byte(FormatSeed(seed))); err != nil {
		return 0, err
	}
	return seed, nil
}

const seedPrefix = "edgeseal-simulator-seed-v1 "

// FormatSeed is the content of a seed file.
func FormatSeed(seed int64) string { return seedPrefix + strconv.FormatInt(seed, 10) + "\n" }

// ParseSeed parses the content of a seed file.
func ParseSeed(b []byte) (int64, error) {
	s, ok := strings.CutPrefix(string(b), seedPrefix)
	if !ok || !strings.HasSuffix(s, "\n") {
		return 0, fmt.Errorf("simulator: seed file: bad format")
	}
	seed, err := strconv.ParseInt(strings.TrimSuffix(s, "\n"), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("simulator: seed file: %w", err)
	}
	return seed, nil
}

// writeDurable writes dir/name via a synced temp file, rename, dir sync.
func writeDurable(dir, name string, data []byte) error {
	f, err := os.CreateTemp(dir, "."+name+".tmp*")
	if err != nil {
		return fmt.Errorf("simulator: %w", err)
	}
	_, werr := f.Write(data)
	serr := f.Sync()
	cerr := f.Close()
	if err := errors.Join(werr, serr, cerr); err != nil {
		_ = os.Remove(f.Name())
		return fmt.Errorf("simulator: write seed: %w", err)
	}
	if err := os.Rename(f.Name(), filepath.Join(dir, name)); err != nil {
		_ = os.Remove(f.Name())
		return fmt.Errorf("simulator: write seed: %w", err)
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("simulator: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("simulator: sync dir: %w", err)
	}
	return nil
}
