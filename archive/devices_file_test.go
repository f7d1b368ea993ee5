package archive_test

import (
	"path/filepath"
	"testing"

	"github.com/edgeseal/edgeseal/archive"
	"github.com/edgeseal/edgeseal/archive/state"
	"github.com/edgeseal/edgeseal/archive/state/statetest"
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
