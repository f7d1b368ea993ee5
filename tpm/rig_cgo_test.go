//go:build cgo

package tpm_test

import (
	"reflect"
	"testing"

	"github.com/edgeseal/edgeseal/tpm"
	"github.com/edgeseal/edgeseal/tpm/simulator"
)

func init() { rigMakers = append([]func(t testing.TB) *rig{simRig}, rigMakers...) }

func isSim(mk func(t testing.TB) *rig) bool {
	return reflect.ValueOf(mk).Pointer() == reflect.ValueOf(simRig).Pointer()
}

// simRig is the in-process simulator. It lives only while a TPM has it
// open, so every reopen is a power cycle that forgets NV and PCRs; and
// every open of its directory is a reboot that moves resetCount and the
// clock past those it recorded there, so reset needs nothing more.
func simRig(t testing.TB) *rig {
	dir := t.TempDir()
	return &rig{
		name:    "simulator",
		spec:    "simulator:" + dir + "/sim",
		opts:    tpm.Options{StateDir: dir + "/state", Simulator: simulator.Open},
		reset:   func(t *testing.T) {},
		restart: func(t *testing.T) {},
	}
}
