package mqtttest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// PKI is a throwaway CA with a server certificate for 127.0.0.1 and a
// client certificate, written as PEM files in Dir.
type PKI struct {
	Dir                           string
	CAFile                        string
	ServerCert, ServerKey         string
	ClientCertFile, ClientKeyFile string
	Pool                          *x509.CertPool
	Client                        tls.Certificate

	ca     *x509.Certificate
	caKey  *ecdsa.PrivateKey
	serial int64
}

// NewPKI generates the CA and both certificates.
func NewPKI(t testing.TB) *PKI {
	t.Helper()
	dir := t.TempDir()
	p := &PKI{Dir: dir, Pool: x509.NewCertPool()}
	caKey := newKey(t)
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "edgeseal test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	p.Pool.AddCert(ca)
	p.ca, p.caKey, p.serial = ca, caKey, 3
	p.CAFile = writePEM(t, dir, "ca.pem", "CERTIFICATE", caDER)
	issue := func(name string, serial int64, server bool) (certDER []byte, key *ecdsa.PrivateKey) {
		key = newKey(t)
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature,
		}
		if server {
			tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
			tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1)}
			tmpl.DNSNames = []string{"localhost"}
		} else {
			tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		return der, key
	}
	sDER, sKey := issue("127.0.0.1", 2, true)
	p.ServerCert = writePEM(t, dir, "server.pem", "CERTIFICATE", sDER)
	p.ServerKey = writePEM(t, dir, "server.key", "EC PRIVATE KEY", ecDER(t, sKey))
	cDER, cKey := issue("edgeseal-site-device", 3, false)
	p.ClientCertFile = writePEM(t, dir, "client.pem", "CERTIFICATE", cDER)
	p.ClientKeyFile = writePEM(t, dir, "client.key", "EC PRIVATE KEY", ecDER(t, cKey))
	p.Client = tls.Certificate{Certificate: [][]byte{cDER}, PrivateKey: cKey}
	return p
}

// Files returns the broker's TLS files (require_certificate true).
func (p *PKI) Files() *TLSFiles {
	return &TLSFiles{CAFile: p.CAFile, CertFile: p.ServerCert, KeyFile: p.ServerKey, RequireCertificate: true}
}

// ClientTLS returns a client config trusting the CA; withCert adds the
// client certificate.
func (p *PKI) ClientTLS(withCert bool) *tls.Config {
	c := &tls.Config{RootCAs: p.Pool, MinVersion: tls.VersionTLS12}
	if withCert {
		c.Certificates = []tls.Certificate{p.Client}
	}
	return c
}

func newKey(t testing.TB) *ecdsa.PrivateKey {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func ecDER(t testing.TB, k *ecdsa.PrivateKey) []byte {
	der, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func writePEM(t testing.TB, dir, name, typ string, der []byte) string {
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// ClientCert is a client certificate issued by the PKI's CA.
type ClientCert struct {
	CN                string
	CertFile, KeyFile string
	Cert              tls.Certificate
}

// Issue issues a client certificate (ExtKeyUsage clientAuth) with common
// name cn, written as PEM files in Dir. With use_identity_as_username the
// broker takes cn as the MQTT username.
func (p *PKI) Issue(t testing.TB, cn string) *ClientCert {
	t.Helper()
	p.serial++
	key := newKey(t)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(p.serial), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.ca, &key.PublicKey, p.caKey)
	if err != nil {
		t.Fatal(err)
	}
	base := fmt.Sprintf("client-%d", p.serial)
	return &ClientCert{
		CN:       cn,
		CertFile: writePEM(t, p.Dir, base+".pem", "CERTIFICATE", der),
		KeyFile:  writePEM(t, p.Dir, base+".key", "EC PRIVATE KEY", ecDER(t, key)),
		Cert:     tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key},
	}
}

// TLS returns a client config trusting the PKI's CA and presenting c.
func (p *PKI) TLS(c *ClientCert) *tls.Config {
	return &tls.Config{RootCAs: p.Pool, MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{c.Cert}}
}
