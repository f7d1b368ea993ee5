package tpm_test

import (
	"context"
	"errors"
	"testing"

	"github.com/edgeseal/edgeseal/tpm"
	"github.com/edgeseal/edgeseal/tpm/swtpmtest"
)

// rig is one TPM backend under test: how to open it, restart it, reset it.
type rig struct {
	name  string
	spec  string
	opts  tpm.Options
	sw    *swtpmtest.Instance // nil for the simulator
	reset func(t *testing.T)  // host reset; every rig has one
	// restart loses what a power cycle loses: the simulator forgets NV
	// and PCRs, swtpm keeps NV.
	restart func(t *testing.T)
}

// rigMakers builds the rigs; the simulator one is added by a cgo file.
var rigMakers = []func(t testing.TB) *rig{swtpmRig}

func swtpmRig(t testing.TB) *rig {
	in := swtpmtest.Start(t)
	r := &rig{
		name: "swtpm",
		spec: in.Spec,
		opts: tpm.Options{StateDir: t.TempDir(), Create: true},
		sw:   in,
	}
	r.reset = func(t *testing.T) {
		if err := in.Reset(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	r.restart = func(t *testing.T) { in.Restart() }
	return r
}

// each runs f against every backend, as subtests named after it.
func each(t *testing.T, f func(t *testing.T, r *rig)) {
	t.Helper()
	for _, mk := range rigMakers {
		// build the rig inside the subtest so skips and cleanups are
		// scoped to it
		name := "swtpm"
		if isSim(mk) {
			name = "simulator"
		}
		t.Run(name, func(t *testing.T) {
			f(t, mk(t))
		})
	}
}

func (r *rig) open(t testing.TB) *tpm.TPM {
	t.Helper()
	tp, err := tpm.Open(context.Background(), r.spec, r.opts)
	if err != nil {
		t.Fatalf("%s: open: %v", r.name, err)
	}
	t.Cleanup(func() {
		if err := tp.Close(); err != nil && !errors.Is(err, tpm.ErrClosed) {
			t.Errorf("close: %v", err)
		}
	})
	return tp
}

func mustClose(t testing.TB, tp *tpm.TPM) {
	t.Helper()
	if err := tp.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
}
