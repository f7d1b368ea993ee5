package tpm

import (
	"encoding/binary"
	"encoding/json"
	"fmt"

	"github.com/google/go-tpm/tpm2"
)

// clockFile records the simulator's TPM clock at the last quote.
const clockFile = "sim-clock.json"

// maxClock bounds a recorded clock (ms): far beyond any real uptime, and
// below the TPM's ClockSet limit.
const maxClock = 1 << 62

type clockState struct {
	V     int    `json:"v"`
	Clock uint64 `json:"clock"`
}

func parseClockFile(name string, b []byte) (clockState, error) {
	var s clockState
	if len(b) > maxStateFile {
		return s, &StateError{File: name, Reason: "too large"}
	}
	if err := json.Unmarshal(b, &s); err != nil {
		return s, &StateError{File: name, Reason: "decode", Err: err}
	}
	if s.V != 1 {
		return s, &StateError{File: name, Reason: fmt.Sprintf("version %d", s.V)}
	}
	if s.Clock > maxClock {
		return s, &StateError{File: name, Reason: "clock out of range"}
	}
	return s, nil
}

// recordClock keeps the clock of the simulator's last quote (simulator
// only), so the next start can move the clock past it.
func (t *TPM) recordClock(attest []byte) error {
	if !t.simulated {
		return nil
	}
	a, err := tpm2.Unmarshal[tpm2.TPMSAttest](attest)
	if err != nil {
		return fmt.Errorf("tpm: quote: %w", err)
	}
	return writeJSON(t.stateDir, clockFile, &clockState{V: 1, Clock: a.ClockInfo.Clock})
}

// restoreClock moves a restarted simulator's clock past the last one it
// quoted. A simulator may start from nothing, its clock near 0: to a
// verifier, a TPM clock going back, which it refuses within one boot. A
// real TPM keeps its clock in NV. (tpm/simulator keeps its own record of
// clock and reset count, so for it this is a second guard.)
// TPM2_ClockSet may only move the clock forward, so this cannot be used to
// roll anything back.
func (t *TPM) restoreClock() error {
	b, err := readState(t.stateDir, clockFile)
	if err != nil || b == nil {
		return err
	}
	st, err := parseClockFile(clockFile, b)
	if err != nil {
		return err
	}
	now, err := tpm2.ReadClock{}.Execute(t.tr)
	if err != nil {
		return fmt.Errorf("tpm: read clock: %w", err)
	}
	if now.CurrentTime.ClockInfo.Clock > st.Clock {
		return nil
	}
	if err := ClockSet(t.tr, st.Clock+1000); err != nil {
		return err
	}
	t.log.Warn("tpm: simulator forgot its clock; moved it past the last quote", "from", now.CurrentTime.ClockInfo.Clock, "to", st.Clock+1000)
	return nil
}

// ClockSet sends TPM2_ClockSet(TPM_RH_OWNER, newTime) with an empty
// password session (go-tpm has no structure for it): it moves the TPM's
// clock forward to newTime, never back. For simulators, whose owner
// password is empty.
func ClockSet(tr Transport, newTime uint64) error {
	cmd := make([]byte, 0, 35)
	cmd = binary.BigEndian.AppendUint16(cmd, uint16(tpm2.TPMSTSessions))
	cmd = binary.BigEndian.AppendUint32(cmd, 0) // size, below
	cmd = binary.BigEndian.AppendUint32(cmd, uint32(tpm2.TPMCCClockSet))
	cmd = binary.BigEndian.AppendUint32(cmd, uint32(tpm2.TPMRHOwner))
	cmd = binary.BigEndian.AppendUint32(cmd, 9) // authorization area
	cmd = binary.BigEndian.AppendUint32(cmd, uint32(tpm2.TPMRSPW))
	cmd = binary.BigEndian.AppendUint16(cmd, 0) // nonce
	cmd = append(cmd, 0)                        // session attributes
	cmd = binary.BigEndian.AppendUint16(cmd, 0) // empty password
	cmd = binary.BigEndian.AppendUint64(cmd, newTime)
	binary.BigEndian.PutUint32(cmd[2:], uint32(len(cmd)))
	rsp, err := tr.Send(cmd)
	if err != nil {
		return fmt.Errorf("tpm: clock set: %w", err)
	}
	if len(rsp) < 10 {
		return fmt.Errorf("tpm: clock set: short response of %d bytes", len(rsp))
	}
	if rc := binary.BigEndian.Uint32(rsp[6:10]); rc != 0 {
		return fmt.Errorf("tpm: clock set: %w", tpm2.TPMRC(rc))
	}
	return nil
}
