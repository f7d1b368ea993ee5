package archive_test

import (
	"fmt"
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
