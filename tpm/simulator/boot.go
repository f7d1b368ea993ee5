//go:build cgo

package simulator

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/google/go-tpm-tools/simulator"
	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"

	"github.com/edgeseal/edgeseal/tpm"
)

// The simulator's TPM state lives in the process: a new process starts it
// afresh, reset count 1 and clock near 0, as if the TPM had been swapped.
// A verifier that has seen a quote of an earlier process refuses that (a
// reset count going back). So the simulator keeps, in dir/clockinfo.json,
// the highest reset count, restart count and clock it has shown, and a
// start moves past them: it power-cycles the simulator (each cycle is a
// TPM Reset, resetCount + 1) until the reset count is above the recorded
// one, and sets the clock forward (TPM2_ClockSet) past the recorded clock.
// The record is written at every start, after every Reset, after every
// command whose signed response carries the clock (before the response
// is returned) and at Close, so a process killed at any point leaves a
// record at least as high as anything that left it.

// loadClockInfo reads dir/clockinfo.json; a missing file is a zero
// ClockInfo (version 0).
func loadClockInfo(dir string) (ClockInfo, error) {
	b, err := readFile(dir, ClockInfoFile)
	if err != nil || b == nil {
		return ClockInfo{}, err
	}
	return ParseClockInfo(b)
}

// boot moves a freshly started simulator past rec, in boot order (a
// higher reset count) and in time (a later clock), and records where it
// ends. s.mu is held.
func (s *Sim) boot(rec ClockInfo) error {
	now, err := s.readClock()
	if err != nil {
		return err
	}
	for !rec.Before(now) {
		before := now
		if err := s.powerCycle(); err != nil {
			return err
		}
		if now, err = s.readClock(); err != nil {
			return err
		}
		if !before.Before(now) {
			return fmt.Errorf("simulator: power cycle: reset count stays at %d", now.ResetCount)
		}
	}
	if rec.V != 0 && now.Clock <= rec.Clock {
		if err := tpm.ClockSet(s.Transport, rec.Clock+1000); err != nil {
			return fmt.Errorf("simulator: %w", err)
		}
	}
	return s.record()
}

// powerCycle stops the simulator and starts it again with the same seed,
// the same hierarchy seeds: a TPM Reset (resetCount + 1, PCRs cleared),
// which also forgets NV and the clock, as a new process does. (The
// simulator's own Reset keeps NV but reverts the seeds to random ones.)
// When the restart fails the Sim is closed.
func (s *Sim) powerCycle() error {
	cerr := s.sim.Close()
	sim, err := simulator.GetWithFixedSeedInsecure(s.Seed)
	if err != nil {
		s.closed = true
		open.Unlock()
		return fmt.Errorf("simulator: power cycle: %w", errors.Join(cerr, err))
	}
	s.sim, s.Transport = sim, transport.FromReadWriteCloser(sim)
	if cerr != nil {
		return fmt.Errorf("simulator: power cycle: %w", cerr)
	}
	return nil
}

// record writes the highest of the record and the simulator's clock
// info now; s.mu is held.
func (s *Sim) record() error {
	now, err := s.readClock()
	if err != nil {
		return err
	}
	next := s.last.max(now)
	if next == s.last {
		return nil
	}
	if err := writeDurable(s.dir, ClockInfoFile, FormatClockInfo(next)); err != nil {
		return err
	}
	s.last = next
	return nil
}

// readClock reads the simulator's clock info.
func (s *Sim) readClock() (ClockInfo, error) {
	rsp, err := tpm2.ReadClock{}.Execute(s.Transport)
	if err != nil {
		return ClockInfo{}, fmt.Errorf("simulator: read clock: %w", err)
	}
	ci := rsp.CurrentTime.ClockInfo
	return ClockInfo{V: 1, ResetCount: ci.ResetCount, RestartCount: ci.RestartCount, Clock: ci.Clock}, nil
}

// Send sends one command. When it is one whose signed response carries
// the clock info (a quote, a certification, TPM2_GetTime, an audit
// digest) and it succeeded, the clock info is recorded before the
// response is returned: a failed record fails the command.
func (s *Sim) Send(cmd []byte) ([]byte, error) {
	rsp, err := s.Transport.Send(cmd)
	if err != nil || !attests(cmd) || len(rsp) < 10 || binary.BigEndian.Uint32(rsp[6:10]) != 0 {
		return rsp, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.record(); err != nil {
		return nil, err
	}
	return rsp, nil
}

// attests reports whether cmd is a command whose response is a signed
// TPMS_ATTEST, which carries the clock info.
func attests(cmd []byte) bool {
	if len(cmd) < 10 {
		return false
	}
	switch tpm2.TPMCC(binary.BigEndian.Uint32(cmd[6:10])) {
	case tpm2.TPMCCQuote, tpm2.TPMCCCertify, tpm2.TPMCCCertifyCreation, tpm2.TPMCCGetTime,
		tpm2.TPMCCGetSessionAuditDigest, tpm2.TPMCCGetCommandAuditDigest, tpm2.TPMCCNVCertify:
		return true
	}
	return false
}

// readFile reads dir/name; a missing file gives (nil, nil).
func readFile(dir, name string) ([]byte, error) {
	b, err := os.ReadFile(filepath.Join(dir, name))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("simulator: %w", err)
	}
	return b, nil
}
