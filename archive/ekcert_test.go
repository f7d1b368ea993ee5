package archive_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/edgeseal/edgeseal/archive"
	"github.com/edgeseal/edgeseal/bundle/bundletest"
	"github.com/edgeseal/edgeseal/bundle/trustfile"
	"github.com/edgeseal/edgeseal/sync"
)

type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func newTestCA(t *testing.T, name string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &testCA{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// ekCert issues an EK certificate for pub as TPM manufacturers do: a
// critical subjectAltName of directory names only.
func (ca *testCA) ekCert(t *testing.T, pub any) []byte {
	t.Helper()
	san, err := asn1.Marshal([]asn1.RawValue{{Class: asn1.ClassContextSpecific, Tag: 4, IsCompound: true,
		Bytes: asn1Marshal(t, pkix.Name{CommonName: "tpm"}.ToRDNSequence())}})
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		ExtraExtensions: []pkix.Extension{{Id: asn1.ObjectIdentifier{2, 5, 29, 17}, Critical: true, Value: san}}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, pub, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func asn1Marshal(t *testing.T, v any) []byte {
	t.Helper()
	b, err := asn1.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// withEKCert returns the chain's trust as DEVICE.json with cert as its
// EK certificate.
func withEKCert(t *testing.T, c *bundletest.Chain, cert []byte) []byte {
	t.Helper()
	tr := *c.Trust
	tr.EKCert = cert
	b, err := tr.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := trustfile.ParseTrust(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// TestEKCertChecked: with EK roots, an enrollment over MQTT is refused
// when its EK certificate is missing, certifies another key, or chains
// to another CA, each naming why; one that chains is stored.
func TestEKCertChecked(t *testing.T) {
	ca, other := newTestCA(t, "tpm-vendor-ca"), newTestCA(t, "someone-else")
	roots, err := archive.ParseEKRoots(ca.pem)
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t)
	e.a.Devices().SetEKRoots(roots)
	c := newChain(t, 0, bundletest.Options{})
	ek, err := x509.ParsePKIXPublicKey(c.Trust.EKPublic)
	if err != nil {
		t.Fatal(err)
	}
	stranger, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	for _, tc := range []struct {
		name  string
		trust []byte
		want  string
	}{
		{"no certificate", withEKCert(t, c, nil), "has no EK certificate"},
		{"another key", withEKCert(t, c, ca.ekCert(t, &stranger.PublicKey)), "is for another key than the request's EK"},
		{"another CA", withEKCert(t, c, other.ekCert(t, ek)), "does not chain to the EK CA bundle"},
	} {
		ack := e.send(c.Opts.Site, c.Opts.Device, tc.trust)
		if ack.Status != sync.EnrollRefused || !strings.Contains(ack.Reason, tc.want) {
			t.Errorf("%s: %+v, want refused with %q", tc.name, ack, tc.want)
		}
	}
	if list, _ := e.a.Devices().List(); len(list) != 0 {
		t.Fatalf("a refused request was stored: %+v", list)
	}
	if ack := e.send(c.Opts.Site, c.Opts.Device, withEKCert(t, c, ca.ekCert(t, ek))); ack.Status != sync.EnrollPending {
		t.Fatalf("EK certificate of the CA: %+v", ack)
	}
	// The bundle file: certificates only.
	if _, err := archive.ParseEKRoots(append(ca.pem, "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"...)); err == nil || !strings.Contains(err.Error(), "PRIVATE KEY") {
		t.Fatalf("bundle with a key: %v", err)
	}
	if _, err := archive.ParseEKRoots([]byte("garbage")); err == nil {
		t.Fatal("garbage accepted as a CA bundle")
	}
}
