package archive_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/edgeseal/edgeseal/archive"
)

// TestSearchByCase: a search by legal-hold case walks the case's keys in
// the export index: the entries of the bundles a hold names, of the
// bundles of a held device accepted after its hold, narrowed by the other
// parameters; none once the case is released; the same after a reopen,
// for a case id longer than a key value, and by the log's holds in an
// index without case keys.
func TestSearchByCase(t *testing.T) {
	ctx := t.Context()
	e := &env{t: t, dir: t.TempDir(), key: testKey, op: operatorKey}
	e.open()
	t.Cleanup(func() {
		if e.a != nil {
			e.a.Close()
		}
	})
	c := indexedChain(t, e)
	device := c.DeviceName()
	all := search(t, e.a, archive.ExportQuery{Device: device, Asc: true})
	bundles := []string{}
	for _, x := range all {
		if !slices.Contains(bundles, x.Bundle) {
			bundles = append(bundles, x.Bundle)
		}
	}
	if len(bundles) != 3 {
		t.Fatalf("bundles of the chain: %v", bundles)
	}
	ids := func(es []*archive.ExportEntry) []string {
		var out []string
		for _, x := range es {
			out = append(out, x.Bundle+" "+x.Export)
		}
		slices.Sort(out)
		return out
	}
	of := func(keep func(*archive.ExportEntry) bool) []string {
		var out []*archive.ExportEntry
		for _, x := range all {
			if keep(x) {
				out = append(out, x)
			}
		}
		return ids(out)
	}
	long := "case-" + strings.Repeat("x", 400)
	if _, err := e.a.Hold(ctx, archive.HoldTarget{Bundle: bundles[1]}, "C-1", "olga", "subpoena", operatorKey, false); err != nil {
		t.Fatal(err)
	}
	if _, err := e.a.Hold(ctx, archive.HoldTarget{Bundle: bundles[0]}, long, "olga", "subpoena", operatorKey, false); err != nil {
		t.Fatal(err)
	}
	if _, err := e.a.Hold(ctx, archive.HoldTarget{Device: device}, "C-2", "olga", "subpoena", operatorKey, false); err != nil {
		t.Fatal(err)
	}
	b, err := c.Next(ctx, 6)
	if err != nil {
		t.Fatal(err)
	}
	e.accept(c, b)
	waitIndexed(t, e.a)
	all = search(t, e.a, archive.ExportQuery{Device: device, Asc: true})
	later := all[len(all)-1].Bundle
	if slices.Contains(bundles, later) {
		t.Fatal("no entry of the bundle accepted after the device hold")
	}

	check := func(name string) {
		t.Helper()
		cases := []struct {
			q    archive.ExportQuery
			want []string
		}{
			{archive.ExportQuery{Case: "C-1"}, of(func(x *archive.ExportEntry) bool { return x.Bundle == bundles[1] })},
			{archive.ExportQuery{Case: "C-1", Principal: "mallory"}, of(func(x *archive.ExportEntry) bool {
				return x.Bundle == bundles[1] && x.Principal == "mallory"
			})},
			{archive.ExportQuery{Case: "C-1", Status: archive.StatusAccepted, Device: device}, of(func(x *archive.ExportEntry) bool {
				return x.Bundle == bundles[1] && x.Status == archive.StatusAccepted
			})},
			{archive.ExportQuery{Case: long}, of(func(x *archive.ExportEntry) bool { return x.Bundle == bundles[0] })},
			{archive.ExportQuery{Case: "C-2"}, of(func(*archive.ExportEntry) bool { return true })},
			{archive.ExportQuery{Case: "C-2", Bundle: later}, of(func(x *archive.ExportEntry) bool { return x.Bundle == later })},
			{archive.ExportQuery{Case: "C-3"}, nil},
		}
		for i, tc := range cases {
			if i != len(cases)-1 && len(tc.want) == 0 {
				t.Fatalf("%s: case %d selects nothing", name, i)
			}
			tc.q.Limit = 2 // pages
			if got := ids(search(t, e.a, tc.q)); !slices.Equal(got, tc.want) {
				t.Errorf("%s: search %+v:\n got %v\nwant %v", name, tc.q, got, tc.want)
			}
		}
	}
	check("case keys")
	e.reopen()
	check("case keys after reopen")
	if err := archive.DropIndexKeysMarker(e.a); err != nil {
		t.Fatal(err)
	}
	check("the log's holds")
	if err := archive.RestoreIndexKeysMarker(e.a); err != nil {
		t.Fatal(err)
	}

	// A release removes the case's keys (device hold: every bundle of it).
	if _, err := e.a.Hold(ctx, archive.HoldTarget{Bundle: bundles[1]}, "C-1", "olga", "", operatorKey, true); err != nil {
		t.Fatal(err)
	}
	if _, err := e.a.Hold(ctx, archive.HoldTarget{Device: device}, "C-2", "olga", "", operatorKey, true); err != nil {
		t.Fatal(err)
	}
	b, err = c.Next(ctx, 6)
	if err != nil {
		t.Fatal(err)
	}
	e.accept(c, b)
	waitIndexed(t, e.a)
	released := func(name string) {
		t.Helper()
		for _, id := range []string{"C-1", "C-2"} {
			if got := search(t, e.a, archive.ExportQuery{Case: id}); len(got) != 0 {
				t.Errorf("%s: case %s after its release: %d entries", name, id, len(got))
			}
		}
		if got := search(t, e.a, archive.ExportQuery{Case: long}); len(got) == 0 {
			t.Errorf("%s: case still holding a bundle: nothing found", name)
		}
	}
	released("case keys")
	if err := archive.DropIndexKeysMarker(e.a); err != nil {
		t.Fatal(err)
	}
	released("the log's holds")
}
