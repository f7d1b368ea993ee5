package main

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/edgeseal/edgeseal/bundle/bundletest"
)

// TestProofEvidenceRefuse: links in place of a bundle or a receipts folder
// are refused without being followed, and bad usage exits 2.
func TestProofEvidenceRefuse(t *testing.T) {
	c := bundletest.MustChain(t, 1, bundletest.Options{})
	dir := t.TempDir()
	raw, err := c.Bundles[0].Bytes()
	if err != nil {
		t.Fatal(err)
	}
	real := filepath.Join(t.TempDir(), "real.bundle.tar")
	write := func(p string, b []byte) {
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(real, raw)
	tr, _ := c.Trust.Marshal()
	trust := filepath.Join(dir, "DEVICE.json")
	write(trust, tr)
	log, err := bundletest.NewArchiveLog()
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKIXPublicKey(log.Pub)
	key := filepath.Join(dir, "archive.pub")
	write(key, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))

	links := filepath.Join(dir, "links")
	if err := os.MkdirAll(links, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(real, filepath.Join(links, "a.bundle.tar")); err != nil {
		t.Fatal(err)
	}
	media := filepath.Join(dir, "media")
	if err := os.MkdirAll(media, 0o755); err != nil {
		t.Fatal(err)
	}
	write(filepath.Join(media, "a.bundle.tar"), raw)
	if err := os.Symlink(t.TempDir(), filepath.Join(dir, "receipts-link")); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"proof", "exp-000001", "--bundles", links, "--trust", trust, "--archive-key", key}, "not a regular file"},
		{[]string{"proof", "exp-000001", "--bundles", filepath.Join(links, "a.bundle.tar"), "--trust", trust, "--archive-key", key}, "not a regular file"},
		{[]string{"proof", "exp-000001", "--bundles", media, "--receipts", filepath.Join(dir, "receipts-link"), "--trust", trust, "--archive-key", key}, "not a folder"},
		{[]string{"proof", "exp-000001", "exp-000002", "--bundles", media, "--trust", trust, "--archive-key", key}, "want one EXPORT-ID"},
		{[]string{"proof", "exp-000001", "--bundles", media, "--trust", trust}, "--archive-key"},
		{[]string{"proof", "exp-000001", "--bundles", media, "--trust", trust, "--archive-key", key}, "no archive receipt"},
		{[]string{"evidence", "--bundles", media, "--trust", trust, "--archive-key", key, "-o", filepath.Join(dir, "p")}, "want one of"},
		{[]string{"evidence", "--export", "x", "--case", "C", "--bundles", media, "-o", filepath.Join(dir, "p")}, "want one of"},
		{[]string{"evidence", "--case", "C", "--bundles", media, "--trust", trust, "--archive-key", key, "-o", filepath.Join(dir, "p")}, "--holds"},
	} {
		var out bytes.Buffer
		var err error
		if tc.args[0] == "proof" {
			err = cmdProof(t.Context(), tc.args[1:], &out)
		} else {
			err = cmdEvidence(t.Context(), tc.args[1:], &out)
		}
		var ee *exitError
		if !errors.As(err, &ee) || ee.code != 2 || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: %v, want exit 2 with %q", tc.args, err, tc.want)
		}
	}
}
