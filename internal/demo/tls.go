package demo

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/edgeseal/edgeseal/internal/fsutil"
)

// certValidity is how long the demo's certificates are valid: long
// enough to run the printed restart lines for a while, short enough that a
// forgotten demo directory is no lasting key to anything.
const certValidity = 30 * 24 * time.Hour

// tlsFiles are the PEM files of the demo's broker TLS: a CA of its own, the
// embedded broker's server certificate for 127.0.0.1 and the device's
// client certificate, named as the broker's ACL expects ("SITE/DEVICE").
type tlsFiles struct {
	CA, ServerCert, ServerKey, ClientCert, ClientKey string
}

// writeTLS makes the demo's CA and certificates (ECDSA P-256) and
// writes them 0600 into dir/tls. The CA's key is not kept: nothing else is
// ever issued by it.
func writeTLS(dir, device string) (*tlsFiles, error) {
	tdir, err := filepath.Abs(filepath.Join(dir, "tls"))
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(tdir, 0o700); err != nil {
		return nil, err
	}
	now := time.Now()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	caTmpl := &x509.Certificate{
		Subject:               pkix.Name{CommonName: "edgeseal demo CA"},
		NotBefore:             now.Add(-time.Minute),
		NotAfter:              now.Add(certValidity),
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	caDER, caCert, err := signCert(caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, err
	}
	out := &tlsFiles{
		CA:         filepath.Join(tdir, "ca.pem"),
		ServerCert: filepath.Join(tdir, "broker.pem"),
		ServerKey:  filepath.Join(tdir, "broker.key"),
		ClientCert: filepath.Join(tdir, "device.pem"),
		ClientKey:  filepath.Join(tdir, "device.key"),
	}
	if err := writePEM(out.CA, "CERTIFICATE", caDER); err != nil {
		return nil, err
	}
	leaves := []struct {
		tmpl           *x509.Certificate
		certFile, file string
	}{
		{&x509.Certificate{
			Subject:     pkix.Name{CommonName: "127.0.0.1"},
			IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
			ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		}, out.ServerCert, out.ServerKey},
		{&x509.Certificate{
			Subject:     pkix.Name{CommonName: device},
			ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		}, out.ClientCert, out.ClientKey},
	}
	for _, l := range leaves {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, err
		}
		l.tmpl.NotBefore, l.tmpl.NotAfter = caTmpl.NotBefore, caTmpl.NotAfter
		l.tmpl.KeyUsage = x509.KeyUsageDigitalSignature
		der, _, err := signCert(l.tmpl, caCert, &key.PublicKey, caKey)
		if err != nil {
			return nil, err
		}
		kder, err := x509.MarshalECPrivateKey(key)
		if err != nil {
			return nil, err
		}
		if err := writePEM(l.certFile, "CERTIFICATE", der); err != nil {
			return nil, err
		}
		if err := writePEM(l.file, "EC PRIVATE KEY", kder); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// signCert issues tmpl (with a random serial) signed by parent's key.
func signCert(tmpl, parent *x509.Certificate, pub *ecdsa.PublicKey, signer *ecdsa.PrivateKey) ([]byte, *x509.Certificate, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, nil, err
	}
	tmpl.SerialNumber = serial
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, signer)
	if err != nil {
		return nil, nil, fmt.Errorf("demo: tls: %w", err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, fmt.Errorf("demo: tls: %w", err)
	}
	return der, c, nil
}

func writePEM(path, typ string, der []byte) error {
	return fsutil.WriteFileAtomic(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600)
}
