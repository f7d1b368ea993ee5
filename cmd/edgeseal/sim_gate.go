package main

import (
	"errors"

	"github.com/edgeseal/edgeseal/tpm"
)

// errInsecureSimulator refuses a "simulator:DIR" TPM that was not asked for
// explicitly.
var errInsecureSimulator = errors.New("tpm: the in-process simulator keeps its secrets in plain files and proves nothing: pass --insecure-simulator (or set tpm_insecure_simulator: true in the agent config) for a test or demo, else use device:/dev/tpmrm0")

// simulatorFor is the simulator opener for tpm.Options: the in-process
// simulator when allowed (an explicit --insecure-simulator or config
// tpm_insecure_simulator: true) and linked in (cgo builds), an opener that
// refuses with errInsecureSimulator when not allowed, nil when not linked.
func simulatorFor(allowed bool) func(dir string) (tpm.Transport, error) {
	if simulatorOpener == nil {
		return nil
	}
	if allowed {
		return simulatorOpener
	}
	return func(string) (tpm.Transport, error) { return nil, errInsecureSimulator }
}
