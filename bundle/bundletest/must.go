package bundletest

import (
	"context"
	"testing"
)

// MustChain is NewChain of a software TPM's chain of n bundles; it fails
// t at once on error.
func MustChain(t testing.TB, n int, opts Options) *Chain {
	t.Helper()
	c, err := NewChain(context.Background(), nil, n, opts)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
