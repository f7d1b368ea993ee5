//go:build !cgo

package simulator

import (
	"errors"

	"github.com/edgeseal/edgeseal/tpm"
)

// Warning is the text a caller should log loudly when the simulator is used.
const Warning = "in-process TPM simulator: INSECURE, for development and tests only"

// ErrNotBuilt is returned by Open in binaries built without cgo.
var ErrNotBuilt = errors.New("simulator: not built in (needs cgo)")

// Open fails: the simulator needs cgo.
func Open(dir string) (tpm.Transport, error) { return nil, ErrNotBuilt }
