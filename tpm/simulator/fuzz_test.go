package simulator_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/edgeseal/edgeseal/tpm"
	"github.com/edgeseal/edgeseal/tpm/simulator"
)

// FuzzParseClockInfo: whatever the bytes, ParseClockInfo accepts only
// bytes that are exactly a bounded record's canonical form, and refuses
// the rest with a *tpm.StateError.
func FuzzParseClockInfo(f *testing.F) {
	for _, v := range clockInfoVectors(f) {
		f.Add([]byte(v.File))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := simulator.ParseClockInfo(b)
		if err != nil {
			var se *tpm.StateError
			if !errors.As(err, &se) || se.File != simulator.ClockInfoFile {
				t.Fatalf("error %v is not a *tpm.StateError on %s", err, simulator.ClockInfoFile)
			}
			return
		}
		if c.V != 1 || c.Clock > simulator.MaxClock || c.ResetCount > simulator.MaxResetCount {
			t.Fatalf("accepted out of bounds: %+v", c)
		}
		if !bytes.Equal(simulator.FormatClockInfo(c), b) {
			t.Fatalf("accepted %q, which is not the canonical %q", b, simulator.FormatClockInfo(c))
		}
	})
}
