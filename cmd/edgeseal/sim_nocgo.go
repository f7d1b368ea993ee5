//go:build !cgo

package main

import "github.com/edgeseal/edgeseal/tpm"

// simulatorOpener is nil: a CGO_ENABLED=0 build has no simulator in it.
var simulatorOpener func(dir string) (tpm.Transport, error)
