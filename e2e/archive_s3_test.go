package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/edgeseal/edgeseal/archive/s3store"
	"github.com/edgeseal/edgeseal/archive/s3store/s3test"
	"github.com/edgeseal/edgeseal/bundle/bundletest"
)

// TestArchiveImportS3 runs `edgeseal archive import` with objects.backend
// s3 against a real versitygw: the bundles land in the locked bucket, and
// an import of the same media again stores nothing twice.
func TestArchiveImportS3(t *testing.T) {
	g := s3test.Start(t)
	dir := t.TempDir()
	cfgFile, bucket := writeS3ArchiveConfig(t, g, dir, "")
	c, err := bundletest.NewChain(t.Context(), nil, 2, bundletest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	media, digests := writeMedia(t, c)
	for _, args := range [][]string{
		{"archive", "enroll-file", writeTrust(t, c), "--config", cfgFile},
		{"archive", "devices", "approve", "site1/dev1", "--key", c.Trust.KeyID, "--no-activation", "--config", cfgFile},
	} {
		if out, code := runCmd(t, args...); code != 0 {
			t.Fatalf("%v: exit %d\n%s", args, code, out)
		}
	}
	for range 2 {
		if out, code := runCmd(t, "archive", "import", media, "--config", cfgFile); code != 0 || !strings.Contains(out, "2 accepted, 0 refused") {
			t.Fatalf("import exit %d\n%s", code, out)
		}
	}
	o := g.Options(bucket)
	o.Prefix = "bundles/"
	s, err := s3store.New(t.Context(), o)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range digests {
		if ok, err := s.Has(t.Context(), d); err != nil || !ok {
			t.Fatalf("bundle sha256:%x not in the bucket: %v, %v", d, ok, err)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "data", "objects")); err == nil {
		t.Fatal("the filesystem object store was used too")
	}
	// A missing bucket stops the import before anything is stored.
	bad := strings.Replace(fileText(t, cfgFile), "bucket: "+bucket, "bucket: edgeseal-absent", 1)
	if err := os.WriteFile(cfgFile, []byte(bad), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, code := runCmd(t, "archive", "import", media, "--config", cfgFile); code == 0 || !strings.Contains(out, "edgeseal-absent") {
		t.Fatalf("import into a missing bucket: exit %d\n%s", code, out)
	}
}
