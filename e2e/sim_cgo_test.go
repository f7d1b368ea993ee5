//go:build cgo

package e2e

import (
	"github.com/edgeseal/edgeseal/tpm"
	"github.com/edgeseal/edgeseal/tpm/simulator"
)

// simulatorOpener is the in-process simulator the tests open a stopped
// agent's TPM state with, linked only in cgo builds.
var simulatorOpener func(dir string) (tpm.Transport, error) = simulator.Open
