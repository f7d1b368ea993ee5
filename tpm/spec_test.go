package tpm_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/edgeseal/edgeseal/tpm"
)

func TestParseSpec(t *testing.T) {
	for _, c := range []struct {
		in   string
		kind tpm.Kind
		arg  string
		ok   bool
	}{
		{"device:/dev/tpmrm0", tpm.KindDevice, "/dev/tpmrm0", true},
		{"swtpm:127.0.0.1:2321", tpm.KindSwtpm, "127.0.0.1:2321", true},
		{"simulator:/var/lib/edgeseal/sim", tpm.KindSimulator, "/var/lib/edgeseal/sim", true},
		{"swtpm:localhost", "", "", false},
		{"tpm:/dev/tpm0", "", "", false},
		{"device:", "", "", false},
		{"/dev/tpmrm0", "", "", false},
	} {
		sp, err := tpm.ParseSpec(c.in)
		if (err == nil) != c.ok {
			t.Fatalf("%q: err %v", c.in, err)
		}
		var se *tpm.SpecError
		if !c.ok && !errors.As(err, &se) {
			t.Fatalf("%q: error %T, want *SpecError", c.in, err)
		}
		if c.ok && (sp.Kind != c.kind || sp.Arg != c.arg || sp.String() != c.in) {
			t.Fatalf("%q: parsed %+v", c.in, sp)
		}
	}
}

func TestOpenErrors(t *testing.T) {
	if _, err := tpm.Open(ctx, "simulator:/tmp/x", tpm.Options{StateDir: t.TempDir()}); err == nil ||
		!strings.Contains(err.Error(), "not built in") {
		t.Fatalf("simulator without Options.Simulator: %v", err)
	}
	if _, err := tpm.Open(ctx, "swtpm:127.0.0.1:1", tpm.Options{}); err == nil {
		t.Fatal("Open without StateDir succeeded")
	}
	if _, err := tpm.Open(ctx, "swtpm:127.0.0.1:1", tpm.Options{StateDir: t.TempDir(), PCRs: []int{24}}); err == nil {
		t.Fatal("Open with PCR 24 succeeded")
	}
}

func TestPCRMismatchErrorWraps(t *testing.T) {
	e := &tpm.PCRMismatchError{
		Key:      "signing",
		PCRs:     []int{0, 7},
		Expected: map[int][]byte{0: {1}, 7: {2}},
		Current:  map[int][]byte{0: {1}, 7: {3}},
	}
	wrapped := fmt.Errorf("agent: seal: %w", e)
	var got *tpm.PCRMismatchError
	if !errors.As(wrapped, &got) || got != e {
		t.Fatal("errors.As does not find the mismatch")
	}
	if ch := e.Changed(); len(ch) != 1 || ch[0] != 7 {
		t.Fatalf("Changed %v", ch)
	}
	if !strings.Contains(e.Error(), "pcr 7 want 02 have 03") || strings.Contains(e.Error(), "pcr 0") {
		t.Fatalf("message %q", e.Error())
	}
}
