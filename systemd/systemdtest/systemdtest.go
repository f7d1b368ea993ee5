// Package systemdtest checks what a service install leaves on disk. It
// serves the tests of package systemd and of the `edgeseal service`
// command, and is imported by tests only.
package systemdtest

import (
	"io/fs"
	"os"
	"testing"
)

// WantMode fails t unless path is a directory exactly when dir is true
// and has permission bits mode.
func WantMode(t testing.TB, path string, dir bool, mode fs.FileMode) {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.IsDir() != dir || st.Mode().Perm() != mode {
		t.Errorf("%s: dir %v mode %v, want dir %v mode %v", path, st.IsDir(), st.Mode().Perm(), dir, mode)
	}
}
