//go:build !cgo

package e2e

import "github.com/edgeseal/edgeseal/tpm"

// simulatorOpener is nil: a CGO_ENABLED=0 test build has no simulator.
var simulatorOpener func(dir string) (tpm.Transport, error)
