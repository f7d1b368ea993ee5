package verify_test

import (
	"slices"
	"testing"

	"github.com/edgeseal/edgeseal/bundle/bundletest"
	"github.com/edgeseal/edgeseal/bundle/verify"
)

// Checks with nothing to hold a bundle against pass as not compared; with
// the previous state every check compares.
func TestVerifyNotCompared(t *testing.T) {
	c := bundletest.MustChain(t, 2, bundletest.Options{})
	notCompared := func(r *verify.Report) []string {
		var out []string
		for _, ch := range r.Checks {
			if ch.NotCompared {
				if !ch.OK || ch.Detail == "" {
					t.Errorf("%s: not compared but ok=%v detail %q", ch.Name, ch.OK, ch.Detail)
				}
				out = append(out, ch.Name)
			}
		}
		return out
	}
	first := verify.Verify(c.Bundles[0], c.Trust, nil)
	if !first.OK() {
		t.Fatalf("first bundle:\n%s", first)
	}
	want := []string{verify.CheckMerkleRange, verify.CheckMerkleConsistency, verify.CheckQuoteResetCount, verify.CheckCounterRising}
	if got := notCompared(first); !slices.Equal(got, want) {
		t.Errorf("first bundle, no previous: not compared %v, want %v", got, want)
	}
	// The second alone: its previous tree is compared, the previous state
	// is missing.
	alone := verify.Verify(c.Bundles[1], c.Trust, nil)
	want = []string{verify.CheckQuoteResetCount, verify.CheckCounterRising, verify.CheckPreviousLeaf}
	if got := notCompared(alone); !alone.OK() || !slices.Equal(got, want) {
		t.Errorf("second bundle alone: ok %v, not compared %v, want %v", alone.OK(), got, want)
	}
	chained := verify.Verify(c.Bundles[1], c.Trust, first.State)
	if got := notCompared(chained); !chained.OK() || len(got) != 0 {
		t.Errorf("second bundle chained: ok %v, not compared %v, want none", chained.OK(), got)
	}
}
