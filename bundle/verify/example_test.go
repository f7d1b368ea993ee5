package verify_test

import (
	"bytes"
	"context"
	"fmt"

	"github.com/edgeseal/edgeseal/bundle"
	"github.com/edgeseal/edgeseal/bundle/bundletest"
	"github.com/edgeseal/edgeseal/bundle/trustfile"
	"github.com/edgeseal/edgeseal/bundle/verify"
)

// ExampleVerify checks a chain of bundles the way `edgeseal verify` does:
// each against the device's trust file and the state the previous left.
func ExampleVerify() {
	chain, err := bundletest.NewChain(context.Background(), nil, 2, bundletest.Options{})
	if err != nil {
		panic(err)
	}
	trustJSON, _ := chain.Trust.Marshal() // DEVICE.json, approved at enrollment
	trust, err := trustfile.ParseTrust(trustJSON)
	if err != nil {
		panic(err)
	}
	var state *verify.State
	for _, b := range chain.Bundles {
		raw, _ := b.Bytes()
		rb, err := bundle.Read(bytes.NewReader(raw), bundle.DefaultLimits)
		if err != nil {
			panic(err)
		}
		rep := verify.Verify(rb, trust, state)
		fmt.Println(rep.OK(), len(rep.Checks), "checks")
		state = rep.State
	}
	// A replayed bundle is caught by name.
	rep := verify.Verify(chain.Bundles[0], trust, state)
	fmt.Println(rep.OK(), rep.Failed())
	// Output:
	// true 37 checks
	// true 37 checks
	// false [checkpoint.previous records.time quote.clock counter.rising previous.leaf]
}
