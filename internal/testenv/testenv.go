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
