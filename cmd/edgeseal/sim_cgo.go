//go:build cgo

package main

import (
	"github.com/edgeseal/edgeseal/tpm"
	"github.com/edgeseal/edgeseal/tpm/simulator"
)

// simulatorOpener is the in-process simulator, linked only in cgo builds.
var simulatorOpener func(dir string) (tpm.Transport, error) = simulator.Open
