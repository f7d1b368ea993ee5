// Package softhsmtest gives tests a fresh SoftHSM2 token: its own token
// directory and configuration (SOFTHSM2_CONF, set for the test), one
// token initialised with softhsm2-util. A test calling New fails when
// SoftHSM2 is missing and CI=true, and skips otherwise.
package softhsmtest

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/edgeseal/edgeseal/internal/testenv"
)

// Module is Debian's SoftHSM2 PKCS#11 library.
const Module = "/usr/lib/softhsm/libsofthsm2.so"

// Token is an initialised token.
type Token struct {
	Module string
	Label  string
	PIN    string
	Conf   string // the SOFTHSM2_CONF file
}

// New initialises a token labelled label in a new directory and points
// SOFTHSM2_CONF at it for the rest of the test (t.Setenv: not parallel).
func New(t *testing.T, label string) *Token {
	t.Helper()
	util, err := exec.LookPath("softhsm2-util")
	_, merr := os.Stat(Module)
	if err != nil || merr != nil {
		testenv.Missing(t, "softhsm2 is not installed (softhsm2-util: %v, %s: %v); install the softhsm2 package", err, Module, merr)
	}
	dir := t.TempDir()
	tokens := filepath.Join(dir, "tokens")
	if err := os.Mkdir(tokens, 0o700); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(dir, "softhsm2.conf")
	if err := os.WriteFile(conf, []byte("directories.tokendir = "+tokens+"\nobjectstore.backend = file\nlog.level = ERROR\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("SOFTHSM2_CONF", conf)
	tok := &Token{Module: Module, Label: label, PIN: "4711-test", Conf: conf}
	out, err := exec.Command(util, "--init-token", "--free", "--label", label, "--pin", tok.PIN, "--so-pin", "0815-so-test").CombinedOutput()
	if err != nil {
		t.Fatalf("softhsm2-util --init-token: %v\n%s", err, out)
	}
	return tok
}
