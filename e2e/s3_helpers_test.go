package e2e

import (
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/edgeseal/edgeseal/archive/s3store/s3test"
	"github.com/edgeseal/edgeseal/bundle/bundletest"
)

// writeS3ArchiveConfig writes dir/archive.yaml for an archive whose
// objects go to a fresh Object Lock bucket of the versitygw g, under the
// prefix bundles/; extra (YAML keys: retention classes, operator keys)
// goes before the objects section; the log engine is testLogEngine's. It
// returns the config file and the bucket.
func writeS3ArchiveConfig(t *testing.T, g *s3test.Gateway, dir, extra string) (cfgFile, bucket string) {
	t.Helper()
	bucket = g.Bucket(t)
	cfgFile = filepath.Join(dir, "archive.yaml")
	if e := testLogEngine(t); e != "" {
		extra += "archive_log:\n  engine: " + e + "\n"
	}
	cfg := fmt.Sprintf(`data_dir: data
retention: 48h
%sobjects:
  backend: s3
  s3:
    endpoint: %s
    bucket: %s
    prefix: bundles/
    credentials_file: %s
    tls:
      ca_file: %s
`, extra, g.Endpoint, bucket, g.WriteCredentials(t), g.CAFile)
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return cfgFile, bucket
}

// writeMedia writes the chain's bundles as files into a new directory
// (removable media for `archive import`) and returns it with their
// SHA-256 digests, in chain order.
func writeMedia(t *testing.T, c *bundletest.Chain) (string, [][32]byte) {
	t.Helper()
	media := t.TempDir()
	var sums [][32]byte
	for _, name := range bundletest.MustWriteMedia(t, media, c.Bundles...) {
		raw, err := os.ReadFile(filepath.Join(media, name))
		if err != nil {
			t.Fatal(err)
		}
		sums = append(sums, sha256.Sum256(raw))
	}
	return media, sums
}

// newOperatorKey makes an operator key pair dir/name(.pub) with
// `archive operator keygen` and returns the private key's path.
func newOperatorKey(t *testing.T, dir, name string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if out, code := runCmd(t, "archive", "operator", "keygen", "--out", p); code != 0 {
		t.Fatalf("operator keygen: exit %d\n%s", code, out)
	}
	return p
}
