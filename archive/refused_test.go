package archive_test

import (
	"strings"
	"testing"

	"github.com/edgeseal/edgeseal/archive"
	"github.com/edgeseal/edgeseal/bundle/bundletest"
)

// A bundle whose TPM reset count went back is refused with a reason an
// operator can act on, and the gaps that follow only because it was
// refused say so and name it and the first cause; once the real bundle
// arrives the device's chain goes on.
func TestResetBackThenGaps(t *testing.T) {
	e := newEnv(t)
	c := newChain(t, 4, bundletest.Options{})
	e.approve(c)
	site, dev := c.Opts.Site, c.Opts.Device
	e.accept(c, c.Bundles[0])

	back, _, err := c.Tamper(t.Context(), bundletest.Case{Kind: "quote.resetcount", Target: 1, Prev: 0})
	if err != nil {
		t.Fatal(err)
	}
	backRaw := raw(t, back)
	rj := e.refused(site, dev, backRaw, archive.CheckClock)
	first := reasonOf(t, rj, archive.CheckClock)
	if !strings.Contains(first, "reset count went back") || !strings.Contains(first, "replaced or cleared") {
		t.Fatalf("reset count going back explained as %q", first)
	}

	prevDigest := digestOf(backRaw)
	for _, b := range c.Bundles[2:] {
		data := raw(t, b)
		gap := reasonOf(t, e.refused(site, dev, data, archive.CheckGap), archive.CheckGap)
		if !strings.Contains(gap, "consequence of refused bundle "+prevDigest) || !strings.Contains(gap, "first cause: "+archive.CheckClock+": "+first) {
			t.Fatalf("gap after %s explained as %q", prevDigest, gap)
		}
		prevDigest = digestOf(data)
	}

	// A gap with no refused bundle before it says nothing of one.
	e2 := newEnv(t)
	e2.approve(c)
	e2.accept(c, c.Bundles[0])
	gap := reasonOf(t, e2.refused(site, dev, raw(t, c.Bundles[2]), archive.CheckGap), archive.CheckGap)
	if strings.Contains(gap, "refused bundle") {
		t.Fatalf("a plain gap explained as %q", gap)
	}

	for _, b := range c.Bundles[1:] {
		e.accept(c, b)
	}
}

// reasonOf returns the rejection's reason for check, without the
// "check: " prefix.
func reasonOf(t *testing.T, rj *archive.RejectedError, check string) string {
	t.Helper()
	for _, r := range rj.Rejection.Reasons {
		if s, ok := strings.CutPrefix(r, check+": "); ok {
			return s
		}
	}
	t.Fatalf("no reason for %s in %v", check, rj.Rejection.Reasons)
	return ""
}
