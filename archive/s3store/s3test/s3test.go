// Package s3test starts a real S3 server with Object Lock for tests: the
// versitygw gateway (posix backend with a versioning directory) on
// 127.0.0.1 over https with a throwaway certificate. scripts/deps.sh test
// installs versitygw into $(go env GOPATH)/bin; a test that cannot find it
// fails under CI=true and is skipped otherwise.
package s3test

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"go/build"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/edgeseal/edgeseal/archive/s3store"
	"github.com/edgeseal/edgeseal/internal/testenv"
	"github.com/edgeseal/edgeseal/internal/testpki"
)

// Gateway is a running versitygw process (posix backend with a
// versioning directory, as Object Lock needs) serving https on 127.0.0.1.
type Gateway struct {
	Endpoint    string      // https://127.0.0.1:PORT
	CAFile      string      // PEM of the certificate the gateway serves
	TLS         *tls.Config // trusts CAFile
	Credentials s3store.Credentials
	Root        string // the posix backend's top directory
	buckets     atomic.Int64
}

// versitygwPath finds the versitygw binary: $VERSITYGW, PATH, then
// $GOPATH/bin where scripts/deps.sh test installs it. A missing binary
// fails the test under CI=true and skips it otherwise.
func versitygwPath(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("VERSITYGW"); p != "" {
		return p
	}
	if p, err := exec.LookPath("versitygw"); err == nil {
		return p
	}
	for _, dir := range filepath.SplitList(build.Default.GOPATH) {
		p := filepath.Join(dir, "bin", "versitygw")
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() {
			return p
		}
	}
	msg := "versitygw not found on PATH or in $GOPATH/bin: run scripts/deps.sh test"
	testenv.Missing(t, "%s", msg)
	return ""
}

// Start starts versitygw for the test and stops it at cleanup.
func Start(t testing.TB) *Gateway {
	t.Helper()
	bin := versitygwPath(t)
	dir := t.TempDir()
	root, vers := filepath.Join(dir, "root"), filepath.Join(dir, "versions")
	for _, d := range []string{root, vers} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	certFile, keyFile, pool := selfSigned(t, dir)
	g := &Gateway{
		CAFile:      certFile,
		TLS:         &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
		Credentials: s3store.Credentials{AccessKeyID: "edgesealtest", SecretAccessKey: "edgeseal-test-secret-0123456789"},
		Root:        root,
	}
	var lastErr error
	for range 3 { // the free port may be taken between probe and bind
		addr := freeAddr(t)
		logf, err := os.Create(filepath.Join(dir, "versitygw.log"))
		if err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(bin, "--port", addr, "--cert", certFile, "--key", keyFile, "--quiet",
			"posix", "--versioning-dir", vers, root)
		cmd.Env = append(os.Environ(), "ROOT_ACCESS_KEY="+g.Credentials.AccessKeyID, "ROOT_SECRET_KEY="+g.Credentials.SecretAccessKey)
		cmd.Stdout, cmd.Stderr = logf, logf
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if err := cmd.Start(); err != nil {
			logf.Close()
			t.Fatalf("start versitygw: %v", err)
		}
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait(); logf.Close() }()
		if lastErr = waitListening(addr, exited); lastErr == nil {
			t.Cleanup(func() {
				_ = cmd.Process.Signal(syscall.SIGTERM)
				select {
				case <-exited:
				case <-time.After(10 * time.Second):
					_ = cmd.Process.Kill()
					<-exited
				}
			})
			g.Endpoint = "https://" + addr
			return g
		}
		_ = cmd.Process.Kill()
		<-exited
	}
	out, _ := os.ReadFile(filepath.Join(dir, "versitygw.log"))
	t.Fatalf("versitygw did not start: %v\n%s", lastErr, out)
	return nil
}

func freeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func waitListening(addr string, exited <-chan error) error {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-exited:
			return fmt.Errorf("versitygw exited: %v", err)
		default:
		}
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("versitygw not listening on %s after 30s", addr)
}

// selfSigned writes a certificate for 127.0.0.1 and its key under dir.
func selfSigned(t testing.TB, dir string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	return certFile, keyFile, testpki.SelfSigned(t, certFile, keyFile, "versitygw test")
}

// Options are s3store options for bucket on g, with a retention of two
// days.
func (g *Gateway) Options(bucket string) s3store.Options {
	return s3store.Options{
		Endpoint: g.Endpoint, TLS: g.TLS, Bucket: bucket, Credentials: g.Credentials,
		Retention: 2 * 24 * time.Hour,
	}
}

// Bucket creates a fresh bucket with Object Lock enabled.
func (g *Gateway) Bucket(t testing.TB) string {
	t.Helper()
	name := fmt.Sprintf("edgeseal-t-%d", g.buckets.Add(1))
	if err := s3store.CreateBucket(t.Context(), g.Options(name)); err != nil {
		t.Fatalf("create bucket %s: %v", name, err)
	}
	return name
}

// WriteCredentials writes the gateway's access key as a credentials file
// (s3store.ParseCredentials) and returns its path.
func (g *Gateway) WriteCredentials(t testing.TB) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "s3.key")
	if err := os.WriteFile(p, []byte(g.Credentials.AccessKeyID+"\n"+g.Credentials.SecretAccessKey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}
