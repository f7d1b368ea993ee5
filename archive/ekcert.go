package archive

import (
	"bytes"
	"crypto/x509"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"fmt"
	"slices"

	"github.com/edgeseal/edgeseal/bundle/trustfile"
	"github.com/edgeseal/edgeseal/bundle/wire"
)

// MaxEKCAFile bounds the EK CA bundle file.
const MaxEKCAFile = 4 << 20

// ParseEKRoots reads a PEM bundle of TPM manufacturer CA certificates
// (enroll.ek_ca). Every certificate in it is a trust anchor for EK
// certificates, so a bundle may hold a manufacturer's intermediate CAs
// beside its roots. A bundle without a certificate, or with another PEM
// block, is an error.
func ParseEKRoots(data []byte) (*x509.CertPool, error) {
	if len(data) > MaxEKCAFile {
		return nil, fmt.Errorf("archive: ek ca: %d bytes: %w", len(data), wire.ErrTooLarge)
	}
	pool := x509.NewCertPool()
	n := 0
	for rest := data; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			if len(bytes.TrimSpace(rest)) > 0 {
				return nil, errors.New("archive: ek ca: data that is not PEM")
			}
			break
		}
		if b.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("archive: ek ca: PEM block %.40q (want CERTIFICATE)", b.Type)
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("archive: ek ca: certificate %d: %w", n+1, err)
		}
		pool.AddCert(c)
		n++
	}
	if n == 0 {
		return nil, errors.New("archive: ek ca: no certificate")
	}
	return pool, nil
}

// oidSubjectAltName: EK certificates carry the TPM's manufacturer, model
// and version as directory names in a critical subjectAltName, which
// crypto/x509 leaves unhandled.
var oidSubjectAltName = asn1.ObjectIdentifier{2, 5, 29, 17}

// CheckEKCert checks the EK certificate of t against roots: present,
// certifying t's EK public key, and chaining to one of roots (any
// extended key usage; TCG EK certificates name tcg-kp-EKCertificate).
// Errors name what is wrong.
func CheckEKCert(t *trustfile.Trust, roots *x509.CertPool) error {
	if len(t.EKCert) == 0 {
		return errors.New("the request has no EK certificate, and the archive requires one that chains to its EK CA bundle (enroll.ek_ca)")
	}
	c, err := x509.ParseCertificate(t.EKCert)
	if err != nil {
		return fmt.Errorf("the EK certificate does not parse: %v", err)
	}
	der, err := x509.MarshalPKIXPublicKey(c.PublicKey)
	if err != nil || !bytes.Equal(der, t.EKPublic) {
		return fmt.Errorf("the EK certificate (subject %q, issuer %q) is for another key than the request's EK", c.Subject, c.Issuer)
	}
	c.UnhandledCriticalExtensions = slices.DeleteFunc(slices.Clone(c.UnhandledCriticalExtensions), func(o asn1.ObjectIdentifier) bool {
		return o.Equal(oidSubjectAltName)
	})
	if _, err := c.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		return fmt.Errorf("the EK certificate (issuer %q, serial %s) does not chain to the EK CA bundle (enroll.ek_ca): %v", c.Issuer, c.SerialNumber, err)
	}
	return nil
}
