package archive_test

import (
	"encoding/json"
	"os"
	"strings"
	"testing"
)

// readVectorFile reads the JSON test vectors in file into v.
func readVectorFile(t testing.TB, file string, v any) {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
}

// vectorsFrom returns the JSON test vectors in file.
func vectorsFrom[V any](t testing.TB, file string) V {
	t.Helper()
	var v V
	readVectorFile(t, file, &v)
	return v
}

// refusedVector is an input a parser must refuse with an error that
// contains Error.
type refusedVector struct {
	Name, Input, Error string
}

// checkRefused requires at least min vectors, each refused by parse with
// its error.
func checkRefused(t *testing.T, what string, min int, cases []refusedVector, parse func([]byte) error) {
	t.Helper()
	if len(cases) < min {
		t.Fatalf("%d refused %s vectors, want at least %d", len(cases), what, min)
	}
	for _, c := range cases {
		if err := parse([]byte(c.Input)); err == nil || !strings.Contains(err.Error(), c.Error) {
			t.Errorf("%s %s: %v, want an error containing %q", what, c.Name, err, c.Error)
		}
	}
}

// checkOversize requires parse to refuse, as too large, a JSON object
// that opens with head and is padded past max bytes.
func checkOversize(t *testing.T, what, head string, max int, parse func([]byte) error) {
	t.Helper()
	big := head + `,"pad":"` + strings.Repeat("x", max) + `"}`
	if err := parse([]byte(big)); err == nil || !strings.Contains(err.Error(), "too large") {
		t.Fatalf("oversize %s: %v", what, err)
	}
}
