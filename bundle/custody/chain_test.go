package custody_test

import (
	"context"
	"testing"

	"github.com/edgeseal/edgeseal/bundle/bundletest"
)

// newChain is a chain of n valid bundles from a software TPM.
func newChain(t testing.TB, n int, opts bundletest.Options) *bundletest.Chain {
	t.Helper()
	c, err := bundletest.NewChain(context.Background(), nil, n, opts)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
