package e2e

import (
	"crypto/tls"
	"crypto/x509"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/edgeseal/edgeseal/internal/testenv"
)

// apiCertByCommand runs `edgeseal agent tls-cert` into a new folder of
// dir and returns what its output names: the api.tls_cert and api.tls_key
// values of its config lines and the CA file the clients trust. It checks
// that a second run into the same folder is refused and changes nothing.
func apiCertByCommand(t *testing.T, dir string) (cert, key, ca string) {
	t.Helper()
	out := filepath.Join(dir, "api-tls")
	if err := os.Mkdir(out, 0o700); err != nil {
		t.Fatal(err)
	}
	stdout, code := runCmd(t, "agent", "tls-cert", "--out-dir", out, "--host", "127.0.0.1,localhost", "--days", "30")
	if code != 0 {
		t.Fatalf("agent tls-cert: exit %d\n%s", code, stdout)
	}
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	for _, l := range lines {
		l = strings.TrimSpace(l)
		if v, ok := strings.CutPrefix(l, "tls_cert: "); ok {
			cert = v
		} else if v, ok := strings.CutPrefix(l, "tls_key: "); ok {
			key = v
		}
	}
	ca = lines[len(lines)-1]
	if cert == "" || key == "" || !strings.HasPrefix(ca, out) {
		t.Fatalf("agent tls-cert printed no tls_cert, tls_key or CA file:\n%s", stdout)
	}
	before, err := os.ReadFile(ca)
	if err != nil {
		t.Fatal(err)
	}
	if o, code := runCmd(t, "agent", "tls-cert", "--out-dir", out); code == 0 || !strings.Contains(o, "exists") {
		t.Fatalf("a second tls-cert into the same folder: exit %d\n%s", code, o)
	}
	if after, _ := os.ReadFile(ca); string(after) != string(before) {
		t.Fatal("a refused second tls-cert changed the CA file")
	}
	return cert, key, ca
}

// TestAPICertRecipe: the openssl recipe of docs/integrations.md, the
// alternative to `edgeseal agent tls-cert`, run as written, makes a key
// and a certificate that pair and that a client trusting the certificate
// accepts for 127.0.0.1 and localhost. (TestNodeRED proves tls-cert's
// files with a real Node-RED.)
func TestAPICertRecipe(t *testing.T) {
	if _, err := exec.LookPath("openssl"); err != nil {
		testenv.Missing(t, "openssl: scripts/deps.sh test installs it")
	}
	dir := t.TempDir()
	cert, key := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	recipe := certRecipe(t, key, cert)
	if out, err := exec.Command("bash", "-euc", recipe).CombinedOutput(); err != nil {
		t.Fatalf("the certificate recipe of docs/integrations.md:\n%s\n%v\n%s", recipe, err, out)
	}
	pair, err := tls.LoadX509KeyPair(cert, key)
	if err != nil {
		t.Fatalf("the recipe's key and certificate: %v", err)
	}
	leaf, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	for _, h := range []string{"127.0.0.1", "localhost"} {
		if _, err := leaf.Verify(x509.VerifyOptions{DNSName: h, Roots: pool}); err != nil {
			t.Errorf("%s: %v", h, err)
		}
	}
}
