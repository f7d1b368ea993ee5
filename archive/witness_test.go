package archive_test

import (
	"testing"

	"github.com/edgeseal/edgeseal/bundle/archivesig"
	"github.com/edgeseal/edgeseal/bundle/bundletest"
)

// TestReceiptConsistency: a device's first receipt carries no
// consistency members; each later one carries witnessFrom, the
// archive checkpoint size of the device's previous receipt, and a proof
// that verifies from that checkpoint to its own (other devices' bundles
// in between, across a reopen); the first bundle sent again gets a fresh
// receipt proven from the newest receipt's checkpoint (TestRepeatFreshReceipt).
func TestReceiptConsistency(t *testing.T) {
	e := newEnv(t)
	a := newChain(t, 3, bundletest.Options{})
	b := newChain(t, 2, bundletest.Options{Site: "site2", Device: "dev2"})
	e.approve(a)
	e.approve(b)
	receipt := func(reply []byte) *archivesig.Receipt {
		t.Helper()
		r, err := archivesig.VerifyReceipt(reply, e.a.KeyID(), e.a.PublicKey())
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	first := e.accept(a, a.Bundles[0])
	prev := receipt(first)
	if prev.WitnessFrom != 0 || prev.WitnessProof != nil {
		t.Fatalf("first receipt has consistency from %d", prev.WitnessFrom)
	}
	if rb := receipt(e.accept(b, b.Bundles[0])); rb.WitnessFrom != 0 {
		t.Fatalf("another device's first receipt has consistency from %d", rb.WitnessFrom)
	}
	for i := 1; i < 3; i++ {
		if i == 2 {
			e.accept(b, b.Bundles[1])
			e.reopen()
		}
		r := receipt(e.accept(a, a.Bundles[i]))
		last, err := prev.ArchiveRoot()
		if err != nil {
			t.Fatal(err)
		}
		if r.WitnessFrom != last.Size || len(r.WitnessProof) == 0 {
			t.Fatalf("bundle %d: consistency from %d with %d hashes, previous checkpoint %d", i, r.WitnessFrom, len(r.WitnessProof), last.Size)
		}
		if _, err := archivesig.CheckConsistency(&last, r); err != nil {
			t.Fatalf("bundle %d: %v", i, err)
		}
		prev = r
	}
	// The first bundle again: its stored receipt has no witness proof,
	// the device was given larger checkpoints since: a fresh receipt,
	// proven from the last one's checkpoint.
	again, err := e.a.Receive(t.Context(), a.Opts.Site, a.Opts.Device, raw(t, a.Bundles[0]))
	if err != nil {
		t.Fatal(err)
	}
	e.freshFor(first, again, raw(t, a.Bundles[0]), a.DeviceName(), prev)

}
