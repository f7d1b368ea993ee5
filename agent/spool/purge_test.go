package spool

import (
	"os"
	"path/filepath"
	"testing"
)

// TestPurgeDone: the data file of a receipt naming a purged digest goes,
// its sidecar and receipt stay; other pairs and links stay.
func TestPurgeDone(t *testing.T) {
	dir := t.TempDir()
	done := filepath.Join(dir, DoneDir)
	if n, err := PurgeDone(dir, map[string]bool{"sha256:aa": true}); n != 0 || err != nil {
		t.Fatalf("no done/: %d %v", n, err)
	}
	os.Mkdir(done, 0o755)
	write := func(name, s string) {
		if err := os.WriteFile(filepath.Join(done, name), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("a.json", "A")
	write("a.json"+MetaSuffix, "{}")
	write("a.json"+ReceiptSuffix, `{"exportId":"a","digest":"sha256:aa"}`)
	write("b.json", "B")
	write("b.json"+ReceiptSuffix, `{"exportId":"b","digest":"sha256:bb"}`)
	write("target", "T")
	os.Symlink(filepath.Join(done, "target"), filepath.Join(done, "c.json"))
	write("c.json"+ReceiptSuffix, `{"exportId":"c","digest":"sha256:aa"}`)
	n, err := PurgeDone(dir, map[string]bool{"sha256:aa": true})
	if n != 1 || err != nil {
		t.Fatalf("purged %d: %v", n, err)
	}
	for name, want := range map[string]bool{"a.json": false, "a.json" + MetaSuffix: true, "a.json" + ReceiptSuffix: true, "b.json": true, "c.json": true, "target": true} {
		if _, err := os.Lstat(filepath.Join(done, name)); (err == nil) != want {
			t.Errorf("%s: exists %v, want %v", name, err == nil, want)
		}
	}
}
