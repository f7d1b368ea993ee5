package sync

import (
	"bytes"
	"crypto/tls"
	"os"
	"path/filepath"
	"testing"

	"github.com/edgeseal/edgeseal/sync/mqtttest"
)

// TestClientTLS: no file is nil (the system roots); the CA alone trusts
// it; CA, certificate and key add the client certificate; a missing or
// empty CA file and a certificate without its key are errors.
func TestClientTLS(t *testing.T) {
	pki := mqtttest.NewPKI(t)
	if tc, err := ClientTLS("", "", ""); tc != nil || err != nil {
		t.Fatalf("no files: %v, %v; want nil, nil", tc, err)
	}
	tc, err := ClientTLS(pki.CAFile, "", "")
	if err != nil || tc.RootCAs == nil || len(tc.Certificates) != 0 || tc.MinVersion != tls.VersionTLS12 {
		t.Fatalf("ca only: %+v, %v", tc, err)
	}
	tc, err = ClientTLS(pki.CAFile, pki.ClientCertFile, pki.ClientKeyFile)
	if err != nil || tc.RootCAs == nil || len(tc.Certificates) != 1 || !bytes.Equal(tc.Certificates[0].Certificate[0], pki.Client.Certificate[0]) {
		t.Fatalf("ca and client certificate: %+v, %v", tc, err)
	}
	empty := filepath.Join(t.TempDir(), "empty.pem")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for name, files := range map[string][3]string{
		"missing ca":       {filepath.Join(t.TempDir(), "none.pem"), "", ""},
		"empty ca":         {empty, "", ""},
		"cert without key": {pki.CAFile, pki.ClientCertFile, ""},
	} {
		if tc, err := ClientTLS(files[0], files[1], files[2]); err == nil {
			t.Errorf("%s: %+v, want an error", name, tc)
		}
	}
}
