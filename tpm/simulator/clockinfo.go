package simulator

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"

	"github.com/edgeseal/edgeseal/tpm"
)

// ClockInfoFile is the file in the simulator's directory that keeps the
// highest reset count, restart count and clock the simulator has shown,
// so that the next start can move past them.
const ClockInfoFile = "clockinfo.json"

// Bounds of a clock info file.
const (
	maxClockInfoFile = 256
	// MaxClock (ms) is far beyond any real uptime and below the limit
	// of TPM2_ClockSet.
	MaxClock = 1 << 62
	// MaxResetCount bounds the reset count a start has to pass: the
	// simulator gets there by power cycles, about a millisecond each.
	MaxResetCount = 1 << 20
)

// ClockInfo is the content of ClockInfoFile, version 1: the TPMS_CLOCK_INFO
// fields that must only move forward, as the simulator last showed them.
// Its one encoding is FormatClockInfo's:
//
//	{"v":1,"resetCount":3,"restartCount":0,"clock":123456}
type ClockInfo struct {
	V            int    `json:"v"`
	ResetCount   uint32 `json:"resetCount"`
	RestartCount uint32 `json:"restartCount"`
	Clock        uint64 `json:"clock"` // milliseconds
}

// Before reports whether c comes before o in boot order: a lower reset
// count, or the same one and a lower restart count.
func (c ClockInfo) Before(o ClockInfo) bool {
	return c.ResetCount < o.ResetCount || c.ResetCount == o.ResetCount && c.RestartCount < o.RestartCount
}

// max returns the highest boot of the two and the highest clock.
func (c ClockInfo) max(o ClockInfo) ClockInfo {
	out := c
	if c.Before(o) {
		out.ResetCount, out.RestartCount = o.ResetCount, o.RestartCount
	}
	out.Clock = max(c.Clock, o.Clock)
	out.V = 1
	return out
}

// FormatClockInfo is the content of a clock info file.
func FormatClockInfo(c ClockInfo) []byte {
	return fmt.Appendf(nil, `{"v":1,"resetCount":%d,"restartCount":%d,"clock":%d}`+"\n", c.ResetCount, c.RestartCount, c.Clock)
}

// ParseClockInfo parses the content of a clock info file strictly: version
// 1, every field, nothing else, within bounds, and exactly the bytes
// FormatClockInfo writes. Errors are *tpm.StateError.
func ParseClockInfo(b []byte) (ClockInfo, error) {
	var c ClockInfo
	bad := func(reason string, err error) (ClockInfo, error) {
		return ClockInfo{}, &tpm.StateError{File: ClockInfoFile, Reason: reason, Err: err}
	}
	if len(b) > maxClockInfoFile {
		return bad("too large", nil)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return bad("decode", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return bad("trailing data", nil)
	}
	if c.V != 1 {
		return bad(fmt.Sprintf("version %d", c.V), nil)
	}
	if c.Clock > MaxClock {
		return bad("clock out of range", nil)
	}
	if c.ResetCount > MaxResetCount {
		return bad(fmt.Sprintf("reset count %d above %d: start a new simulator directory", c.ResetCount, MaxResetCount), nil)
	}
	if !bytes.Equal(b, FormatClockInfo(c)) {
		return bad("not in canonical form", nil)
	}
	return c, nil
}
