package archive_test

import (
	"crypto/sha256"
	"sync"
	"testing"
	"time"

	"github.com/edgeseal/edgeseal/archive"
	"github.com/edgeseal/edgeseal/bundle/bundletest"
	"github.com/edgeseal/edgeseal/bundle/wire"
)

// The dashboard's reads: a refused bundle is an open alert until a bundle
// of its device is accepted after it; the policy of the device's exports
// is listed as in force, for the fleet and for the device.
func TestDashboardReads(t *testing.T) {
	e := newEnv(t)
	e.a.Close()
	var mu sync.Mutex
	now := time.Date(2026, 11, 26, 2, 0, 0, 0, time.UTC)
	tick := func() { mu.Lock(); now = now.Add(time.Minute); mu.Unlock() }
	a, err := archive.Open(t.Context(), archive.Options{Dir: e.dir, Key: e.key, LogEngine: e.engineName(),
		Now:        func() time.Time { mu.Lock(); defer mu.Unlock(); return now },
		Quarantine: archive.QuarantineLimits{AlertInterval: -1}})
	if err != nil {
		t.Fatal(err)
	}
	e.a = a
	c := newChain(t, 3, bundletest.Options{})
	e.approve(c)
	device := c.Opts.Site + "/" + c.Opts.Device
	e.accept(c, c.Bundles[0])
	tick()
	if _, err := e.a.Receive(t.Context(), c.Opts.Site, c.Opts.Device, raw(t, c.Bundles[2])); err == nil {
		t.Fatal("a gap was accepted")
	}
	waitIndexed(t, e.a)
	al := e.a.QuarantineAlerts(10)
	if len(al) != 1 || al[0].Device != device || al[0].Kind != archive.KindRejected || len(al[0].Reasons) == 0 {
		t.Fatalf("quarantine alerts: %+v", al)
	}
	open, err := e.a.OpenAlerts(t.Context(), 10)
	if err != nil || len(open) != 1 {
		t.Fatalf("open alerts after the refusal: %+v %v", open, err)
	}
	tick()
	e.accept(c, c.Bundles[1])
	waitIndexed(t, e.a)
	if open, err := e.a.OpenAlerts(t.Context(), 10); err != nil || len(open) != 0 {
		t.Fatalf("open alerts after a later accepted bundle: %+v %v", open, err)
	}

	fleet, err := e.a.DevicePolicies(t.Context(), "")
	if err != nil {
		t.Fatal(err)
	}
	hist, err := e.a.DevicePolicies(t.Context(), device)
	if err != nil {
		t.Fatal(err)
	}
	page, err := e.a.SearchExports(t.Context(), archive.ExportQuery{Device: device, Limit: 1})
	if err != nil || len(page.Items) != 1 {
		t.Fatalf("newest export: %v %v", page, err)
	}
	want := page.Items[0].Policy
	if want == "" {
		t.Fatal("the test chain's exports name no policy: the fixture no longer exercises policy history")
	}
	if len(fleet) != 1 || fleet[0].Device != device || fleet[0].Policy != want || !fleet[0].Current {
		t.Errorf("policies of the fleet: %+v", fleet)
	}
	if len(hist) == 0 || hist[0].Policy != want || !hist[0].Current || hist[0].Exports == 0 || hist[0].First == "" {
		t.Errorf("policies of %s: %+v", device, hist)
	}
}

// The policy page's per-device policy keys: after a device's exports
// change policy, the fleet view names the new policy as current and the
// device's view lists every policy it used, newest first, with counts
// equal to the entries a search finds under each; an index without the
// keys' marker (an older build) answers the same by searching.
func TestDevicePolicyKeys(t *testing.T) {
	e := newEnv(t)
	c := indexedChain(t, e)
	device := c.DeviceName()
	newPolicy := wire.FormatHash(sha256.Sum256([]byte("policy v2")))
	c.Opts.Policy = newPolicy
	b, err := c.Next(t.Context(), 6)
	if err != nil {
		t.Fatal(err)
	}
	e.accept(c, b)
	waitIndexed(t, e.a)

	want := map[string]int{}
	for _, x := range search(t, e.a, archive.ExportQuery{Device: device}) {
		if x.Policy != "" {
			want[x.Policy]++
		}
	}
	if len(want) != 3 {
		t.Fatalf("policies the search finds: %v", want)
	}
	check := func(name string) {
		t.Helper()
		fleet, err := e.a.DevicePolicies(t.Context(), "")
		if err != nil {
			t.Fatal(err)
		}
		if len(fleet) != 1 || fleet[0].Device != device || fleet[0].Policy != newPolicy || !fleet[0].Current || fleet[0].Last == "" {
			t.Errorf("%s: policies of the fleet: %+v", name, fleet)
		}
		hist, err := e.a.DevicePolicies(t.Context(), device)
		if err != nil {
			t.Fatal(err)
		}
		if len(hist) != len(want) || hist[0].Policy != newPolicy || !hist[0].Current {
			t.Fatalf("%s: policies of %s: %+v", name, device, hist)
		}
		for i, p := range hist {
			if p.Exports != want[p.Policy] || p.First == "" || p.Last < p.First || p.Current != (i == 0) {
				t.Errorf("%s: policy %d: %+v, want %d entries", name, i, p, want[p.Policy])
			}
			if i > 0 && p.Last > hist[i-1].Last {
				t.Errorf("%s: policy %d is newer than %d: %+v", name, i, i-1, hist)
			}
		}
	}
	check("policy keys")
	e.reopen() // the marker and keys survive a reopen
	check("policy keys after reopen")
	if err := archive.DropIndexKeysMarker(e.a); err != nil {
		t.Fatal(err)
	}
	check("search")
}
