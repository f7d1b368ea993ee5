package proof_test

import (
	"testing"

	"github.com/edgeseal/edgeseal/bundle"
	"github.com/edgeseal/edgeseal/bundle/bundletest"
	"github.com/edgeseal/edgeseal/bundle/proof"
)

// fixture is a device's chain of bundles, each accepted by one archive
// log, with its receipt.
type fixture struct {
	chain    *bundletest.Chain
	log      *bundletest.ArchiveLog
	raw      [][]byte // bundle tars
	receipts [][]byte
	trust    []byte
}

func newFixture(t testing.TB, n int, opts bundletest.Options) *fixture {
	t.Helper()
	c := bundletest.MustChain(t, n, opts)
	log, err := bundletest.NewArchiveLog()
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{chain: c, log: log}
	if f.trust, err = c.Trust.Marshal(); err != nil {
		t.Fatal(err)
	}
	for _, b := range c.Bundles {
		raw, err := b.Bytes()
		if err != nil {
			t.Fatal(err)
		}
		rc, err := log.Accept(b)
		if err != nil {
			t.Fatal(err)
		}
		f.raw = append(f.raw, raw)
		f.receipts = append(f.receipts, rc)
	}
	return f
}

// export returns an export of bundle i whose payload is in the bundle.
func (f *fixture) export(t testing.TB, i int) proof.Export {
	t.Helper()
	exps, err := proof.Exports(f.chain.Bundles[i])
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range exps {
		if _, ok := f.chain.Bundles[i].Files[bundle.PayloadDir+e.Payload[len("sha256:"):]]; ok {
			return e
		}
	}
	t.Fatalf("bundle %d has no export with its payload", i)
	return proof.Export{}
}

func (f *fixture) proof(t testing.TB, i int, id string) *proof.Proof {
	t.Helper()
	p, err := proof.Build(proof.Input{Bundle: f.raw[i], ExportID: id, Trust: f.trust, Receipt: f.receipts[i], ArchiveKey: f.log.PKIX()})
	if err != nil {
		t.Fatal(err)
	}
	return p
}
