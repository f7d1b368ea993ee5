package main

import (
	"crypto/ed25519"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/edgeseal/edgeseal/bundle/bundletest"
)

// TestInputsRefuseSpecialFiles: a FIFO given as proof's --trust or
// --archive-key, as policy verify's --admins or signed file, as policy
// keygen's --admins (no key left behind), or as either input of verify
// receipt is refused at once (exit 2, the file named) instead of blocking
// in open until a writer comes.
func TestInputsRefuseSpecialFiles(t *testing.T) {
	dir := t.TempDir()
	in := func(n string) string { return filepath.Join(dir, n) }
	pub, _, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(in("archive.pub"), pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := cmdPolicyKeygen([]string{"--out", in("alice.key"), "--name", "alice", "--admins", in("set.json")}, io.Discard); err != nil {
		t.Fatal(err)
	}
	fifo := in("fifo")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatalf("mkfifo: %v", err)
	}
	notRegular := fifo + ": not a regular file"
	for _, tc := range []struct {
		name string
		run  func() error
		want string
	}{
		{"proof --archive-key", func() error {
			return cmdProof(t.Context(), []string{"--archive-key", fifo, "--trust", in("set.json"), "--bundles", dir, "exp-1"}, io.Discard)
		}, "proof: --archive-key: archive key: " + notRegular},
		{"proof --trust", func() error {
			return cmdProof(t.Context(), []string{"--archive-key", in("archive.pub"), "--trust", fifo, "--bundles", dir, "exp-1"}, io.Discard)
		}, "trust file: " + notRegular},
		{"policy verify --admins", func() error {
			return cmdPolicyVerify([]string{"--admins", fifo, in("set.json")}, io.Discard)
		}, notRegular},
		{"policy keygen --admins", func() error {
			err := cmdPolicyKeygen([]string{"--out", in("bob.key"), "--name", "bob", "--admins", fifo}, io.Discard)
			if _, serr := os.Lstat(in("bob.key")); !errors.Is(serr, os.ErrNotExist) {
				t.Errorf("policy keygen --admins FIFO left %s behind (%v)", in("bob.key"), serr)
			}
			return err
		}, notRegular},
		{"policy verify SIGNED", func() error {
			return cmdPolicyVerify([]string{"--admins", in("set.json"), fifo}, io.Discard)
		}, notRegular},
		{"verify receipt --archive-key", func() error {
			return cmdVerifyReceipt(t.Context(), []string{"--archive-key", fifo, in("set.json")}, io.Discard)
		}, "--archive-key: archive key: " + notRegular},
		{"verify receipt RECEIPT", func() error {
			return cmdVerifyReceipt(t.Context(), []string{"--archive-key", in("archive.pub"), fifo}, io.Discard)
		}, notRegular},
	} {
		wantRefused(t, tc.name, fifo, tc.want, tc.run)
	}
}

// wantRefused runs run, which must end at once with exit 2 and an error
// holding want; one still blocked after 10 s (in open of fifo, waiting
// for a writer) fails the test, after fifo is opened for writing so the
// test binary can end.
func wantRefused(t *testing.T, name, fifo, want string, run func() error) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- run() }()
	select {
	case err := <-done:
		var ee *exitError
		if !errors.As(err, &ee) || ee.code != 2 || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want exit 2 with %q", name, err, want)
		}
	case <-time.After(10 * time.Second):
		if f, err := os.OpenFile(fifo, os.O_WRONLY|syscall.O_NONBLOCK, 0); err == nil {
			f.Close()
		}
		t.Fatalf("%s blocked", name)
	}
}

// writeChain writes the trust file and the one bundle of a fresh
// one-bundle chain into dir (DEVICE.json and name) and returns their paths.
func writeChain(t *testing.T, dir, name string) (trust, bundle string) {
	t.Helper()
	c := bundletest.MustChain(t, 1, bundletest.Options{})
	raw, err := c.Bundles[0].Bytes()
	if err != nil {
		t.Fatal(err)
	}
	tr, _ := c.Trust.Marshal()
	trust, bundle = filepath.Join(dir, "DEVICE.json"), filepath.Join(dir, name)
	for p, b := range map[string][]byte{trust: tr, bundle: raw} {
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return trust, bundle
}

// TestProofArchiveKeyMessage: a missing --archive-key file is named with
// the flag, not with the agent's "sync:" context.
func TestProofArchiveKeyMessage(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "nope.pub")
	err := cmdProof(t.Context(), []string{"--archive-key", missing, "--trust", missing, "--bundles", missing, "exp-1"}, io.Discard)
	if err == nil || strings.Contains(err.Error(), "sync:") || !strings.Contains(err.Error(), "proof: --archive-key: archive key: open "+missing+": no such file") {
		t.Fatalf("proof with a missing archive key: %v", err)
	}
}
