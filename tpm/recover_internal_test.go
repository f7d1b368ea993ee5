package tpm

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestIdentityFileVector reads the spec vector of tpm-identity.json and
// refuses its malformed variants by name.
func TestIdentityFileVector(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("testdata", identityFile))
	if err != nil {
		t.Fatal(err)
	}
	rec, err := parseIdentityFile(b)
	if err != nil {
		t.Fatal(err)
	}
	if rec.EKPublic != "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08" || rec.AKPublic != "60303ae22b998861bce3b28f33eec1be758a213c86c93c076dbe9f558c11c752" {
		t.Fatalf("vector read as %+v", rec)
	}
	for name, c := range map[string]struct{ in, want string }{
		"unknown field": {strings.Replace(string(b), `"v": 1,`, `"v": 1, "x": 2,`, 1), "unknown field"},
		"version 2":     {strings.Replace(string(b), `"v": 1`, `"v": 2`, 1), "version 2"},
		"short digest":  {strings.Replace(string(b), `"9f86`, `"`, 1), "not a lowercase hex"},
		"upper hex":     {strings.Replace(string(b), `9f86`, `9F86`, 1), "not a lowercase hex"},
		"trailing":      {string(b) + "{}", "data after"},
		"oversize":      {string(b) + strings.Repeat(" ", maxStateFile), "too large"},
	} {
		_, err := parseIdentityFile([]byte(c.in))
		var se *StateError
		if !errors.As(err, &se) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want *StateError mentioning %q", name, err, c.want)
		}
	}
}
