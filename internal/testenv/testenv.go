// Package testenv decides what a test does when something it needs from the
// machine is missing: under CI=true the test fails, so a missing tool never
// reads as a pass; elsewhere it is skipped with the reason.
package testenv

import (
	"os"
	"testing"
)

// CI reports whether the tests run under CI=true.
func CI() bool { return os.Getenv("CI") == "true" }

// Missing fails the test under CI=true and skips it otherwise, with the
// reason formatted from format and args.
func Missing(t testing.TB, format string, args ...any) {
	t.Helper()
	if CI() {
		t.Fatalf("missing under CI=true: "+format, args...)
	}
	t.Skipf("missing: "+format, args...)
}

// OtherGroup returns a group id, not the process's effective group, that
// the process may give a file it owns: as root any (the effective group
// plus 4242), else one of its supplementary groups. Without one the test
// is Missing it.
func OtherGroup(t testing.TB) int {
	t.Helper()
	if os.Geteuid() == 0 {
		return os.Getegid() + 4242
	}
	if gs, err := os.Getgroups(); err == nil {
		for _, g := range gs {
			if g != os.Getegid() {
				return g
			}
		}
	}
	Missing(t, "not root and no supplementary group to give the socket (CI=true runs as root)")
	return -1
}
