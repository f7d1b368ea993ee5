package verify_test

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/edgeseal/edgeseal/bundle"
	"github.com/edgeseal/edgeseal/bundle/bundletest"
	"github.com/edgeseal/edgeseal/bundle/verify"
)

// TestTamperTable turns a good two-bundle chain into bad ones and requires
// each attack to fail its own named check, while the untouched bundles pass.
func TestTamperTable(t *testing.T) {
	ctx := context.Background()
	c := bundletest.MustChain(t, 2, bundletest.Options{Records: 9})
	if r := verify.Verify(c.Bundles[0], c.Trust, nil); !r.OK() {
		t.Fatalf("first bundle:\n%s", r)
	}
	if r := verify.Verify(c.Bundles[1], c.Trust, c.States[0]); !r.OK() {
		t.Fatalf("second bundle:\n%s", r)
	}
	if len(bundletest.Cases) < 15 {
		t.Fatalf("only %d tamper cases", len(bundletest.Cases))
	}
	for _, cs := range bundletest.Cases {
		t.Run(cs.Kind, func(t *testing.T) {
			b, prev, err := c.Tamper(ctx, cs)
			if errors.Is(err, bundletest.ErrUnsupported) {
				t.Fatalf("the software TPM must produce every tamper case: %v", err)
			}
			if err != nil {
				t.Fatal(err)
			}
			// The tampered bundle still travels as a tar.
			raw, err := b.Bytes()
			if err != nil {
				t.Fatal(err)
			}
			rb, err := bundle.Read(bytes.NewReader(raw), bundle.DefaultLimits)
			if err != nil {
				t.Fatalf("read tampered bundle: %v", err)
			}
			r := verify.Verify(rb, c.Trust, prev)
			if r.OK() || r.State != nil {
				t.Fatalf("%s (%s) verified:\n%s", cs.Kind, cs.Desc, r)
			}
			got, ok := r.Get(cs.Want)
			if !ok {
				t.Fatalf("no check %s", cs.Want)
			}
			if got.OK || got.Skipped {
				t.Errorf("%s (%s): check %s did not fail on its own; failed: %v\n%s", cs.Kind, cs.Desc, cs.Want, r.Failed(), r)
			}
			t.Logf("failed: %v", r.Failed())
		})
	}
	// Tampering worked on copies: the chain still verifies.
	if r := verify.Verify(c.Bundles[1], c.Trust, c.States[0]); !r.OK() {
		t.Fatalf("second bundle after tampering:\n%s", r)
	}
}

// TestTamperCasesDistinct makes sure the table is not one check in disguise.
func TestTamperCasesDistinct(t *testing.T) {
	var names []string
	for _, cs := range bundletest.Cases {
		if !slices.Contains(verify.CheckNames, cs.Want) {
			t.Errorf("%s expects unknown check %s", cs.Kind, cs.Want)
		}
		names = append(names, cs.Want)
	}
	slices.Sort(names)
	if n := len(slices.Compact(names)); n < 15 {
		t.Errorf("table exercises only %d distinct checks", n)
	}
}
