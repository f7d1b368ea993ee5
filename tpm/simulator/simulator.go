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

	"github.com/edgeseal/edgeseal/internal/fsutil"
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
	dir    string
	Seed   int64
	closed bool

	mu   sync.Mutex // guards last and the record
	last ClockInfo  // what dir/clockinfo.json holds
}

// Close records the clock and shuts the simulator down, which lets
// another Open proceed.
func (s *Sim) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return simulator.ErrUsingClosedSimulator
	}
	s.closed = true
	defer open.Unlock()
	rerr := s.record()
	return errors.Join(rerr, s.Transport.Close())
}

// Insecure returns Warning.
func (*Sim) Insecure() string { return Warning }

// Reset powers the simulator off and on, as a host reboot would: PCRs
// reset, resetCount rises, the clock goes on from where it was, and the
// new counts are recorded before Reset returns. Like a new process, the
// simulator forgets NV (package tpm restores its counter). The caller
// must reopen its tpm.TPM.
func (s *Sim) Reset() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return simulator.ErrUsingClosedSimulator
	}
	if err := s.record(); err != nil {
		return fmt.Errorf("simulator: reset: %w", err)
	}
	if err := s.powerCycle(); err != nil {
		return fmt.Errorf("simulator: reset: %w", err)
	}
	if err := s.boot(s.last); err != nil {
		return fmt.Errorf("simulator: reset: %w", err)
	}
	return nil
}

// Open starts the simulator with the seed kept in dir/seed, creating dir
// and a random seed on first use, and moves it past the reset count,
// restart count and clock recorded in dir/clockinfo.json.
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
	rec, err := loadClockInfo(dir)
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
	s := &Sim{Transport: transport.FromReadWriteCloser(sim), sim: sim, dir: dir, Seed: seed, last: rec}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.boot(rec); err != nil {
		if !s.closed {
			s.closed = true
			_ = s.sim.Close()
			open.Unlock()
		}
		return nil, err
	}
	return s, nil
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

// writeDurable writes dir/name 0600 with fsutil.WriteFileAtomic.
func writeDurable(dir, name string, data []byte) error {
	if err := fsutil.WriteFileAtomic(filepath.Join(dir, name), data, 0o600); err != nil {
		return fmt.Errorf("simulator: write %s: %w", name, err)
	}
	return nil
}
