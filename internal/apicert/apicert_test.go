package apicert

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestMakeVerifies: the server certificate verifies against the CA for
// every host given (and not for another), as a TLS server certificate,
// its key matches it, and the CA may sign nothing below it.
func TestMakeVerifies(t *testing.T) {
	now := time.Now()
	s, err := Make([]string{"127.0.0.1", "localhost", "::1"}, 30, now)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tls.X509KeyPair(s.Cert, s.Key); err != nil {
		t.Fatalf("cert and key do not pair: %v", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(s.CA) {
		t.Fatal("CA PEM does not parse")
	}
	b, _ := pem.Decode(s.Cert)
	leaf, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range []string{"127.0.0.1", "localhost", "::1"} {
		if _, err := leaf.Verify(x509.VerifyOptions{DNSName: h, Roots: pool, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
			t.Errorf("%s: %v", h, err)
		}
	}
	if _, err := leaf.Verify(x509.VerifyOptions{DNSName: "example.com", Roots: pool, CurrentTime: now}); err == nil {
		t.Error("verified for a host it does not name")
	}
	if _, err := leaf.Verify(x509.VerifyOptions{DNSName: "localhost", Roots: pool, CurrentTime: now.AddDate(0, 0, 31)}); err == nil {
		t.Error("verified after its days")
	}
	cb, _ := pem.Decode(s.CA)
	ca, _ := x509.ParseCertificate(cb.Bytes)
	if !ca.IsCA || !ca.MaxPathLenZero || leaf.IsCA {
		t.Errorf("ca IsCA=%v MaxPathLenZero=%v, leaf IsCA=%v", ca.IsCA, ca.MaxPathLenZero, leaf.IsCA)
	}
}

func TestMakeRefusesBadInput(t *testing.T) {
	for _, c := range []struct {
		hosts []string
		days  int
	}{{nil, 1}, {[]string{"localhost"}, 0}, {[]string{"localhost"}, 4000}, {[]string{""}, 1}, {[]string{"a b"}, 1}, {[]string{"*.x"}, 1}, {make([]string, MaxHosts+1), 1}} {
		if _, err := Make(c.hosts, c.days, time.Now()); err == nil {
			t.Errorf("%q %d: accepted", c.hosts, c.days)
		}
	}
}

// TestWrite: the files are created with their modes; a second Write, a
// symbolic link in place of a file, and a symbolic link as the directory
// are refused and leave what was there.
func TestWrite(t *testing.T) {
	s, err := Make([]string{"127.0.0.1"}, 1, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := Write(dir, s); err != nil {
		t.Fatal(err)
	}
	for name, mode := range map[string]os.FileMode{KeyFile: 0o640, CertFile: 0o644, CAFile: 0o644} {
		fi, err := os.Lstat(filepath.Join(dir, name))
		if err != nil || fi.Mode() != mode {
			t.Errorf("%s: %v %v, want mode %v", name, fi.Mode(), err, mode)
		}
	}
	got, _ := os.ReadFile(filepath.Join(dir, KeyFile))
	if string(got) != string(s.Key) {
		t.Error("key file differs")
	}
	s2, _ := Make([]string{"127.0.0.1"}, 1, time.Now())
	if err := Write(dir, s2); !errors.Is(err, fs.ErrExist) {
		t.Errorf("second write: %v, want fs.ErrExist", err)
	}
	if got, _ := os.ReadFile(filepath.Join(dir, CAFile)); string(got) != string(s.CA) {
		t.Error("second write changed the CA file")
	}

	// A symbolic link where the key goes: refused, its target untouched,
	// and nothing else written.
	dir2 := t.TempDir()
	target := filepath.Join(t.TempDir(), "target")
	if err := os.WriteFile(target, []byte("keep"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, filepath.Join(dir2, KeyFile)); err != nil {
		t.Fatal(err)
	}
	if err := Write(dir2, s); !errors.Is(err, fs.ErrExist) {
		t.Errorf("symlink key: %v, want fs.ErrExist", err)
	}
	if b, _ := os.ReadFile(target); string(b) != "keep" {
		t.Error("symlink target changed")
	}
	if _, err := os.Lstat(filepath.Join(dir2, CAFile)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("CA written beside a refused key: %v", err)
	}

	// The directory itself a symbolic link: refused.
	link := filepath.Join(t.TempDir(), "link")
	if err := os.Symlink(t.TempDir(), link); err != nil {
		t.Fatal(err)
	}
	if err := Write(link, s); err == nil {
		t.Error("a symbolic link as the directory was accepted")
	}
}
