package bundletest

import (
	"strings"
	"testing"

	"github.com/edgeseal/edgeseal/bundle"
	"github.com/edgeseal/edgeseal/bundle/proof"
	"github.com/edgeseal/edgeseal/bundle/wire"
)

// Accepted is a device's chain whose bundles one archive log accepted in
// order: the bundles' tars, their receipts and the chain's trust file,
// all a proof of an export needs.
type Accepted struct {
	Chain    *Chain
	Log      *ArchiveLog
	Raw      [][]byte // the tars, in the order accepted
	Receipts [][]byte // the receipt of each tar
	Trust    []byte   // the chain's trust file
}

// NewAccepted has a new archive log accept the bundles of c.
func NewAccepted(c *Chain) (*Accepted, error) {
	log, err := NewArchiveLog()
	if err != nil {
		return nil, err
	}
	a := &Accepted{Chain: c, Log: log}
	if a.Trust, err = c.Trust.Marshal(); err != nil {
		return nil, err
	}
	for _, b := range c.Bundles {
		if err := a.Accept(b); err != nil {
			return nil, err
		}
	}
	return a, nil
}

// MustAccepted is NewAccepted of MustChain(t, n, opts); it fails t at
// once on error.
func MustAccepted(t testing.TB, n int, opts Options) *Accepted {
	t.Helper()
	a, err := NewAccepted(MustChain(t, n, opts))
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// Accept has the log accept b (a later bundle of the chain) and keeps
// its tar and receipt.
func (a *Accepted) Accept(b *bundle.Bundle) error {
	raw, err := b.Bytes()
	if err != nil {
		return err
	}
	rc, err := a.Log.Accept(b)
	if err != nil {
		return err
	}
	a.Raw = append(a.Raw, raw)
	a.Receipts = append(a.Receipts, rc)
	return nil
}

// Payload returns the payload of digest ("sha256:<hex>") that the i-th
// bundle holds, and whether it holds it (a purged or withheld payload is
// not).
func (a *Accepted) Payload(i int, digest string) ([]byte, bool) {
	b, ok := a.Chain.Bundles[i].Files[bundle.PayloadDir+strings.TrimPrefix(digest, wire.HashPrefix)]
	return b, ok
}

// MustProof is Proof; it fails t at once on error.
func (a *Accepted) MustProof(t testing.TB, i int, id string) *proof.Proof {
	t.Helper()
	p, err := a.Proof(i, id)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// Proof builds the proof of export id from the i-th accepted bundle.
func (a *Accepted) Proof(i int, id string) (*proof.Proof, error) {
	return proof.Build(proof.Input{Bundle: a.Raw[i], ExportID: id, Trust: a.Trust, Receipt: a.Receipts[i], ArchiveKey: a.Log.PKIX()})
}
