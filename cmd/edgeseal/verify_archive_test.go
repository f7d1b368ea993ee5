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

// TestEquivocationVerifyArchive: `verify archive` over receipts of two
// devices. One log: nothing inconsistent (exit 0). A second log under the
// same key that put the devices' entries in the other order: archive.fork
// (exit 1) naming both devices. A receipt after a rotation of the
// archive's key is verified under the key its chain announces. A receipt by another key fails
// archive.signature. A linked receipt in a folder, a linked or
// incomplete --log copy, and missing arguments are refused (exit 2).
func TestEquivocationVerifyArchive(t *testing.T) {
	c1 := bundletest.MustChain(t, 1, bundletest.Options{})
	c2 := bundletest.MustChain(t, 1, bundletest.Options{Site: "site2", Device: "dev2"})
	honest := bundletest.MustArchiveLog(t)
	fork, err := honest.Fork()
	if err != nil {
		t.Fatal(err)
	}
	other := bundletest.MustArchiveLog(t)
	dir := t.TempDir()
	write := func(p string, b []byte) string {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	accept := func(l *bundletest.ArchiveLog, c *bundletest.Chain) []byte {
		t.Helper()
		rc, err := l.Accept(c.Bundles[0])
		if err != nil {
			t.Fatal(err)
		}
		return rc
	}
	der, _ := x509.MarshalPKIXPublicKey(honest.Pub)
	key := write(filepath.Join(dir, "archive.key.pub"), pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
	good := filepath.Join(dir, "good")
	write(filepath.Join(good, "site1", "a.receipt.json"), accept(honest, c1)) // size 1
	write(filepath.Join(good, "site2", "b.receipt.json"), accept(honest, c2)) // size 2
	accept(fork, c2)
	forked := write(filepath.Join(dir, "forked.receipt.json"), accept(fork, c1)) // size 2, other root
	// After a rotation the new key signs: verify archive learns it from
	// the receipt's key chain.
	if err := honest.Rotate(); err != nil {
		t.Fatal(err)
	}
	c3 := bundletest.MustChain(t, 1, bundletest.Options{Site: "site3", Device: "dev3"})
	write(filepath.Join(good, "site3", "c.receipt.json"), accept(honest, c3)) // size 3, the new key
	foreign := write(filepath.Join(dir, "other.receipt.json"), accept(other, c1))

	runIt := func(args ...string) (string, error) {
		var out bytes.Buffer
		err := cmdVerify(t.Context(), append([]string{"archive"}, args...), &out)
		return out.String(), err
	}
	code := func(err error) int {
		var ee *exitError
		if err == nil {
			return 0
		}
		if errors.As(err, &ee) {
			return ee.code
		}
		return -1
	}
	out, err := runIt("--archive-key", key, good)
	if code(err) != 0 || !strings.Contains(out, "no inconsistency found") || !strings.Contains(out, "3 device(s)") {
		t.Fatalf("one log: %v\n%s", err, out)
	}
	out, err = runIt("--archive-key", key, good, forked)
	if code(err) != 1 || !strings.Contains(out, "FAILED   archive.fork") || !strings.Contains(out, "site1/dev1") || !strings.Contains(out, "site2/dev2") {
		t.Fatalf("a fork: %v\n%s", err, out)
	}
	out, err = runIt("--archive-key", key, good, foreign, "--json")
	if code(err) != 1 || !strings.Contains(out, `"name": "archive.signature"`) {
		t.Fatalf("another key's receipt: %v\n%s", err, out)
	}

	// --trust: a device's bundles are verified before their records
	// count; another TPM's bundle under the device's name fails
	// devices.verified.
	raw, err := c1.Bundles[0].Bytes()
	if err != nil {
		t.Fatal(err)
	}
	bundleFile := write(filepath.Join(dir, "b", "dev1.bundle.tar"), raw)
	tr1, _ := c1.Trust.Marshal()
	trust1 := write(filepath.Join(dir, "DEVICE-1.json"), tr1)
	impostor := bundletest.MustChain(t, 1, bundletest.Options{})
	trI, _ := impostor.Trust.Marshal()
	trustI := write(filepath.Join(dir, "DEVICE-impostor.json"), trI)
	out, err = runIt("--archive-key", key, "--trust", trust1, good, bundleFile)
	if code(err) != 0 || !strings.Contains(out, "1 bundle(s) verified against their device's trust file") {
		t.Fatalf("--trust: %v\n%s", err, out)
	}
	out, err = runIt("--archive-key", key, "--trust", trustI, good, bundleFile)
	if code(err) != 1 || !strings.Contains(out, "FAILED   devices.verified") || !strings.Contains(out, "keys.trusted") {
		t.Fatalf("--trust of another TPM: %v\n%s", err, out)
	}

	links := filepath.Join(dir, "links")
	if err := os.MkdirAll(links, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(forked, filepath.Join(links, "x.receipt.json")); err != nil {
		t.Fatal(err)
	}
	logLink := filepath.Join(dir, "loglink")
	if err := os.Symlink(t.TempDir(), logLink); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--archive-key", key, links}, "not a regular file"},
		{[]string{"--archive-key", key, "--log", logLink, good}, "not a folder"},
		{[]string{"--archive-key", key, "--log", t.TempDir(), good}, "checkpoint"},
		{[]string{good}, "--archive-key"},
		{[]string{"--archive-key", key}, "--archive-key"},
		{[]string{"--archive-key", key, key}, "not a receipt"},
		{[]string{"--archive-key", key, os.DevNull}, "not a regular file"},
	} {
		if _, err := runIt(tc.args...); code(err) != 2 || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: %v, want exit 2 with %q", tc.args, err, tc.want)
		}
	}
}
