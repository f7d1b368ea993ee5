package doctor

import (
	"bytes"
	"testing"
)

// TestReport: one line per check, a fix line only when something is to be
// done, failures and warnings counted.
func TestReport(t *testing.T) {
	var out bytes.Buffer
	d := New(t.Context(), Options{Out: &out})
	d.Report(LevelOK, "tpm", "reachable", "never printed")
	d.Report(LevelWarn, "disk", "low", "free space")
	d.Report(LevelFail, "broker", "refused", "")
	want := "ok    tpm:     reachable\n" +
		"warn  disk:    low\n" +
		"               fix: free space\n" +
		"FAIL  broker:  refused\n"
	if out.String() != want {
		t.Fatalf("printed\n%q\nwant\n%q", out.String(), want)
	}
	if d.Failed() != 1 || d.Warnings() != 1 {
		t.Fatalf("%d failed, %d warnings", d.Failed(), d.Warnings())
	}
}

func TestHumanBytes(t *testing.T) {
	for n, want := range map[uint64]string{0: "0 B", 1023: "1023 B", 1024: "1.0 KiB", 3 << 30: "3.0 GiB"} {
		if got := humanBytes(n); got != want {
			t.Errorf("humanBytes(%d) = %q, want %q", n, got, want)
		}
	}
}
