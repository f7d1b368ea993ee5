package proof_test

import (
	"testing"

	"github.com/edgeseal/edgeseal/bundle/bundletest"
	"github.com/edgeseal/edgeseal/bundle/proof"
)

// fixture is a device's chain of bundles, each accepted by one archive
// log, with its receipt.
type fixture struct{ *bundletest.Accepted }

func newFixture(t testing.TB, n int, opts bundletest.Options) *fixture {
	t.Helper()
	return &fixture{bundletest.MustAccepted(t, n, opts)}
}

// export returns an export of bundle i whose payload is in the bundle.
func (f *fixture) export(t testing.TB, i int) proof.Export {
	t.Helper()
	exps, err := proof.Exports(f.Chain.Bundles[i])
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range exps {
		if _, ok := f.Payload(i, e.Payload); ok {
			return e
		}
	}
	t.Fatalf("bundle %d has no export with its payload", i)
	return proof.Export{}
}
