//go:build cgo

package tpm_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/edgeseal/edgeseal/tpm"
	"github.com/edgeseal/edgeseal/tpm/attest"
	"github.com/edgeseal/edgeseal/tpm/simulator"
)

// The in-process simulator forgets its clock when the process ends; a
// restart from the same state directory moves the clock past the last
// quote, so quotes keep moving forward as a real TPM's do.
func TestSimulatorClockSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	opts := tpm.Options{StateDir: filepath.Join(dir, "state"), Simulator: simulator.Open, Create: true}
	var last uint64
	for i := range 3 {
		tp, err := tpm.Open(context.Background(), "simulator:"+filepath.Join(dir, "sim"), opts)
		if err != nil {
			t.Fatal(err)
		}
		q, err := tp.Quote(context.Background(), []byte("nonce"))
		tp.Close()
		if err != nil {
			t.Fatal(err)
		}
		a, err := attest.ParseAttest(q.Attest)
		if err != nil {
			t.Fatal(err)
		}
		if i > 0 && a.Clock.Clock <= last {
			t.Fatalf("start %d: clock %d, the last quote before the restart had %d", i, a.Clock.Clock, last)
		}
		last = a.Clock.Clock
	}
}
