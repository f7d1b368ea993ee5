//go:build !cgo

package main

import (
	"context"
	"errors"
)

// agentChain needs the in-process TPM simulator, which needs cgo.
func agentChain(context.Context, string, string, int) ([]byte, [][]byte, error) {
	return nil, nil, errors.New("corpusgen: the agent's bundles need the in-process TPM simulator: build with cgo (CGO_ENABLED=1)")
}
