package bundle_test

import (
	"bytes"
	"testing"

	"github.com/edgeseal/edgeseal/bundle"
	"github.com/edgeseal/edgeseal/bundle/bundletest"
	"github.com/edgeseal/edgeseal/bundle/verify"
)

func TestChainVerifies(t *testing.T) {
	c := bundletest.MustChain(t, 3, bundletest.Options{})
	var prev *verify.State
	for i, b := range c.Bundles {
		// Through the tar and back.
		raw, err := b.Bytes()
		if err != nil {
			t.Fatal(err)
		}
		rb, err := bundle.Read(bytes.NewReader(raw), bundle.DefaultLimits)
		if err != nil {
			t.Fatalf("bundle %d: %v", i, err)
		}
		r := verify.Verify(rb, c.Trust, prev)
		if !r.OK() {
			t.Fatalf("bundle %d:\n%s", i, r)
		}
		if len(r.Checks) != len(verify.CheckNames) {
			t.Errorf("%d checks, want %d", len(r.Checks), len(verify.CheckNames))
		}
		prev = r.State
	}
}
