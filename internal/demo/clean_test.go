package demo

import (
	"os"
	"path/filepath"
	"testing"
)

// TestCleanPreviousRun: a second run in the same folder starts from
// nothing: the first run's evidence pack (which the new pack must not
// meet: it is never written over) and its policy index are removed with
// the rest, and files the demo does not make stay.
func TestCleanPreviousRun(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{EvidenceDir + "/data/pack.json", EvidenceDir + "/VERIFY.md", "policy-changes.json", "bundles/00000000000000000007.bundle.tar", "DEVICE.json", "mine.txt"} {
		p := filepath.Join(dir, filepath.FromSlash(f))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := clean(dir); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{EvidenceDir, "policy-changes.json", "bundles", "DEVICE.json"} {
		if _, err := os.Lstat(filepath.Join(dir, f)); !os.IsNotExist(err) {
			t.Errorf("%s left from the previous run (%v)", f, err)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "mine.txt")); err != nil {
		t.Errorf("a file the demo does not make was removed: %v", err)
	}
}
