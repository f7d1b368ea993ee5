// Package soaktest scales the crash, outage and archive replica tests for
// `make soak`: with EDGESEAL_SOAK=N in the environment they run N times
// their rounds (SIGKILLs, broker restarts, archive kills, replica kills). `make test` leaves it unset
// and runs each once at the size the acceptance criteria name.
package soaktest

import (
	"os"
	"strconv"
	"testing"
)

// Env is the environment variable that names the factor.
const Env = "EDGESEAL_SOAK"

// Scale is the factor Env names, 1 when it is unset or empty. A value
// that is not a whole number from 1 to 1000 fails the test, naming it.
func Scale(t testing.TB) int {
	t.Helper()
	v := os.Getenv(Env)
	if v == "" {
		return 1
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > 1000 {
		t.Fatalf("%s=%q: want a whole number from 1 to 1000", Env, v)
	}
	return n
}
