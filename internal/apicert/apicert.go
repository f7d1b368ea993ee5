// Package apicert makes the certificate of the agent's loopback TLS
// listener (api.tcp): a one-use CA and a server certificate it signs for
// the loopback names the clients dial. The CA's private key is never
// written: it signs the one server certificate and is discarded, so the
// CA certificate a client trusts vouches for that certificate alone (a
// renewal makes a new CA, and the clients trust the new one).
package apicert

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/edgeseal/edgeseal/internal/fsutil"
)

// The names of the files Write creates in its directory.
const (
	CAFile   = "api-ca.pem"   // the CA certificate: public, what clients trust
	CertFile = "api-cert.pem" // the server certificate: api.tls_cert
	KeyFile  = "api-key.pem"  // the server's private key: api.tls_key
)

// MaxHosts bounds the names one certificate carries.
const MaxHosts = 16

// Set is a CA certificate, and the server certificate and key it signed,
// PEM-encoded.
type Set struct {
	CA, Cert, Key []byte
}

// Make makes a P-256 CA and a server certificate for hosts (IP addresses
// or DNS names), valid from an hour before now for days days.
func Make(hosts []string, days int, now time.Time) (*Set, error) {
	if len(hosts) == 0 || len(hosts) > MaxHosts {
		return nil, fmt.Errorf("apicert: want 1 to %d hosts, got %d", MaxHosts, len(hosts))
	}
	if days < 1 || days > 3650 {
		return nil, fmt.Errorf("apicert: want 1 to 3650 days, got %d", days)
	}
	var ips []net.IP
	var names []string
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			ips = append(ips, ip)
		} else if h == "" || len(h) > 253 || strings.ContainsAny(h, " \t\r\n/:*") {
			return nil, fmt.Errorf("apicert: not an IP address or DNS name: %.64q", h)
		} else {
			names = append(names, h)
		}
	}
	notBefore, notAfter := now.Add(-time.Hour).UTC(), now.AddDate(0, 0, days).UTC()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("apicert: %w", err)
	}
	caTmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "edgeseal agent API CA " + notBefore.Format("2006-01-02T15:04:05Z")},
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, fmt.Errorf("apicert: ca: %w", err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, fmt.Errorf("apicert: ca: %w", err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("apicert: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: "edgeseal agent API"},
		NotBefore:    notBefore,
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:  ips,
		DNSNames:     names,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return nil, fmt.Errorf("apicert: server: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("apicert: %w", err)
	}
	return &Set{
		CA:   pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		Cert: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		Key:  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
	}, nil
}

func serial() *big.Int {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	b[0] &= 0x7f
	return new(big.Int).SetBytes(b)
}

// Write creates CAFile and CertFile (0644) and KeyFile (0640: the
// agent's group reads it) in dir, durably. dir must be a directory, not
// a symbolic link; an existing file (a symbolic link included) of any of
// the three names is an error that errors.Is fs.ErrExist, and nothing is
// written then.
func Write(dir string, s *Set) error {
	fi, err := os.Lstat(dir)
	if err != nil {
		return fmt.Errorf("apicert: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("apicert: %s: not a directory (a symbolic link is refused)", dir)
	}
	files := []struct {
		name string
		perm os.FileMode
		data []byte
	}{{KeyFile, 0o640, s.Key}, {CertFile, 0o644, s.Cert}, {CAFile, 0o644, s.CA}}
	for _, f := range files {
		if _, err := os.Lstat(filepath.Join(dir, f.name)); err == nil {
			return fmt.Errorf("apicert: %s: %w (remove it to make new ones)", filepath.Join(dir, f.name), fs.ErrExist)
		} else if !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("apicert: %w", err)
		}
	}
	for _, f := range files {
		err := fsutil.WriteNewFile(filepath.Join(dir, f.name), f.perm, func(w io.Writer) error {
			_, err := w.Write(f.data)
			return err
		})
		if err != nil {
			return fmt.Errorf("apicert: %w", err)
		}
	}
	return nil
}
