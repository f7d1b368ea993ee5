package archive_test

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/edgeseal/edgeseal/archive"
	"github.com/edgeseal/edgeseal/archive/state"
	"github.com/edgeseal/edgeseal/archive/state/statetest"
	"github.com/edgeseal/edgeseal/bundle/bundletest"
)

// TestFileRegistryConformance: devices.json, the embedded engine of the
// device registry, passes the registry conformance suite (two views of
// one file are two processes: an operator command and the daemon).
func TestFileRegistryConformance(t *testing.T) {
	dir := t.TempDir()
	statetest.RunRegistry(t, func(t *testing.T, name string) state.Registry {
		return archive.NewFileRegistry(filepath.Join(dir, name+".json"))
	})
}

// TestDevicesUpdateBesideLookups: enrollments (registry updates) while
// other goroutines look devices up and list them all finish: an update
// waiting for the registry's lock never holds what a lookup waits for.
func TestDevicesUpdateBesideLookups(t *testing.T) {
	d, err := archive.OpenDevices(filepath.Join(t.TempDir(), "devices.json"), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	const n = 20
	reqs := make([]*archive.EnrollRequest, n)
	for i := range n {
		c := newChain(t, 0, bundletest.Options{Site: "site1", Device: fmt.Sprintf("dev%d", i)})
		raw, err := c.Trust.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		if reqs[i], err = archive.ParseEnrollRequest(raw); err != nil {
			t.Fatal(err)
		}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			for {
				select {
				case <-done:
					return
				default:
				}
				_, _, _ = d.Trusted("site1/dev0")
				if _, err := d.List(); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	for _, req := range reqs {
		if _, err := d.Enroll(t.Context(), req); err != nil {
			t.Fatal(err)
		}
	}
	close(done)
	wg.Wait()
	if list, err := d.List(); err != nil || len(list) != n {
		t.Fatalf("%d devices listed, want %d: %v", len(list), n, err)
	}
}

// TestSeedRegistry: a registry never written is filled from a
// devices.json that parses, once; a file that does not parse is refused
// and nothing is stored; no file is nothing to do.
func TestSeedRegistry(t *testing.T) {
	dir := t.TempDir()
	ctx := t.Context()
	reg := archive.NewFileRegistry(filepath.Join(dir, "shared.json"))
	bad := filepath.Join(dir, "bad.json")
	if err := os.WriteFile(bad, []byte(`{"version":1,"devices":[{"name":"x"}]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := archive.SeedRegistry(ctx, reg, filepath.Join(dir, "none.json")); err != nil {
		t.Fatalf("no file: %v", err)
	}
	if err := archive.SeedRegistry(ctx, reg, bad); err == nil {
		t.Fatal("a devices.json that does not parse was copied")
	}
	if doc, tag, err := reg.Read(ctx, ""); err != nil || doc != nil || tag != state.NoRegistry {
		t.Fatalf("after refused seeds: %q %q %v", doc, tag, err)
	}
	src := filepath.Join(dir, "devices.json")
	d, err := archive.OpenDevices(src, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	c := newChain(t, 0, bundletest.Options{Site: "site1", Device: "dev1"})
	raw, err := c.Trust.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	req, err := archive.ParseEnrollRequest(raw)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.Enroll(ctx, req); err != nil {
		t.Fatal(err)
	}
	if err := archive.SeedRegistry(ctx, reg, src); err != nil {
		t.Fatal(err)
	}
	if err := archive.SeedRegistry(ctx, reg, bad); err != nil {
		t.Fatalf("seed of a written registry: %v (nothing to read)", err)
	}
	shared, err := archive.OpenDevicesOn(reg, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if list, err := shared.List(); err != nil || len(list) != 1 || list[0].Name != "site1/dev1" {
		t.Fatalf("seeded registry lists %+v %v", list, err)
	}
}
