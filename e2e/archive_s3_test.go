package e2e

import (
	"crypto/sha256"
	"fmt"
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
	bucket := g.Bucket(t)
	dir := t.TempDir()
	cfgFile := filepath.Join(dir, "archive.yaml")
	cfg := fmt.Sprintf(`data_dir: data
retention: 48h
objects:
  backend: s3
  s3:
    endpoint: %s
    bucket: %s
    prefix: bundles/
    credentials_file: %s
    tls:
      ca_file: %s
`, g.Endpoint, bucket, g.WriteCredentials(t), g.CAFile)
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := bundletest.NewChain(t.Context(), nil, 2, bundletest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	media := t.TempDir()
	var digests [][32]byte
	for _, b := range c.Bundles {
		name, _ := b.FileName()
		raw, _ := b.Bytes()
		digests = append(digests, sha256.Sum256(raw))
		if err := os.WriteFile(filepath.Join(media, name), raw, 0o644); err != nil {
			t.Fatal(err)
		}
	}
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
	bad := strings.Replace(cfg, "bucket: "+bucket, "bucket: edgeseal-absent", 1)
	if err := os.WriteFile(cfgFile, []byte(bad), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, code := runCmd(t, "archive", "import", media, "--config", cfgFile); code == 0 || !strings.Contains(out, "edgeseal-absent") {
		t.Fatalf("import into a missing bucket: exit %d\n%s", code, out)
	}
}
