package archived_test

import (
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edgeseal/edgeseal/archive/api"
	"github.com/edgeseal/edgeseal/internal/e2etest"
	"github.com/edgeseal/edgeseal/internal/testenv"
	"github.com/edgeseal/edgeseal/internal/testpki"
)

// opModule is the OpenID provider the test signs in with: zitadel/oidc's
// example server, a real OP (discovery, JWKS, authorization code flow
// with PKCE, userinfo), installed from the module proxy.
const opModule = "github.com/zitadel/oidc/v3/example/server@v3.52.0"

// opBinary returns the example OP's binary: $EDGESEAL_OIDC_OP, else
// where scripts/deps.sh installs it ($(go env GOPATH)/bin/zitadel-oidc-op),
// else installed (once) under the user's cache directory.
func opBinary(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("EDGESEAL_OIDC_OP"); p != "" {
		return p
	}
	if out, err := exec.Command("go", "env", "GOPATH").Output(); err == nil {
		gopath, _, _ := strings.Cut(strings.TrimSpace(string(out)), string(os.PathListSeparator))
		if p := filepath.Join(gopath, "bin", "zitadel-oidc-op", "server"); gopath != "" {
			if _, err := os.Stat(p); err == nil {
				return p
			}
		}
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	dir := filepath.Join(cache, "edgeseal-test", "zitadel-oidc-v3.52.0")
	bin := filepath.Join(dir, "server")
	if _, err := os.Stat(bin); err == nil {
		return bin
	}
	cmd := exec.Command("go", "install", opModule)
	cmd.Env = append(os.Environ(), "GOBIN="+dir, "GOFLAGS=")
	if out, err := cmd.CombinedOutput(); err != nil {
		testenv.Missing(t, "oidc: go install %s: %v\n%s", opModule, err, out)
	}
	return bin
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// startOP runs the example OP on a free port with two users and the
// archive's redirect URL registered for its client "web" (secret
// "secret"); it returns the issuer.
func startOP(t *testing.T, redirect string) string {
	t.Helper()
	bin := opBinary(t)
	dir := t.TempDir()
	users := `{
 "u1": {"ID": "u1", "Username": "alice-sso", "Password": "verysecure", "FirstName": "Alice", "LastName": "A", "Email": "alice@example.com", "EmailVerified": true, "PreferredLanguage": "en"},
 "u2": {"ID": "u2", "Username": "bob-sso", "Password": "verysecure", "FirstName": "Bob", "LastName": "B", "Email": "bob@example.com", "EmailVerified": true, "PreferredLanguage": "en"}
}`
	if err := os.WriteFile(filepath.Join(dir, "users.json"), []byte(users), 0o600); err != nil {
		t.Fatal(err)
	}
	port := freePort(t)
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(), fmt.Sprintf("PORT=%d", port), "USERS_FILE="+filepath.Join(dir, "users.json"), "REDIRECT_URI="+redirect)
	logs := &e2etest.LockedBuffer{}
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	issuer := fmt.Sprintf("http://localhost:%d/", port)
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		resp, err := http.Get(issuer + ".well-known/openid-configuration")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return issuer
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("OP not up: %v\n%s", err, logs)
		}
	}
}

// browser signs in through the OP as a browser would (cookies,
// redirects, the OP's login form) and returns the archive's answer to
// the callback.
func browserSignIn(t *testing.T, apiBase string, pool interface{ Client() *http.Client }, user string) (*http.Client, int, string) {
	t.Helper()
	hc := pool.Client()
	resp, err := hc.Get(apiBase + "/v1/oidc/login")
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	login := resp.Request.URL // the OP's login page
	id := login.Query().Get("authRequestID")
	if id == "" {
		t.Fatalf("not at the OP's login page: %s (%d)", login, resp.StatusCode)
	}
	form := url.Values{"id": {id}, "username": {user}, "password": {"verysecure"}}
	resp, err = hc.PostForm(login.Scheme+"://"+login.Host+"/login/username", form)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return hc, resp.StatusCode, string(b)
}

type jarClient struct{ pool *tls.Config }

func (j jarClient) Client() *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{Jar: jar, Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: j.pool}}
}

// TestOIDCSignIn runs the archive daemon with api.oidc against a real
// OpenID provider process: a user whose email claim maps to auditor signs
// in through the provider's login form and gets a session (cookie) whose
// reads are in the access log under oidc:NAME; a user without a mapped
// role is refused; a callback the browser did not start is refused.
func TestOIDCSignIn(t *testing.T) {
	dir := t.TempDir()
	pool := testpki.SelfSigned(t, filepath.Join(dir, "api.crt"), filepath.Join(dir, "api.key"), "archive")
	apiPort := freePort(t)
	apiBase := fmt.Sprintf("https://127.0.0.1:%d", apiPort)
	issuer := startOP(t, apiBase+"/v1/oidc/callback")
	if err := os.WriteFile(filepath.Join(dir, "client.secret"), []byte("secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := e2etest.ArchiveConfig(t, dir, fmt.Sprintf(`data_dir: data
mqtt:
  embedded:
    listen: 127.0.0.1:0
api:
  listen: 127.0.0.1:%d
  tls_cert: api.crt
  tls_key: api.key
  oidc:
    issuer: %s
    client_id: web
    client_secret_file: client.secret
    redirect_url: %s/v1/oidc/callback
    role_claim: email
    roles:
      - value: alice@example.com
        role: auditor
`, apiPort, issuer, apiBase))
	ar := e2etest.StartArchive(t, cfg)
	_ = ar
	browsers := jarClient{&tls.Config{RootCAs: pool}}

	hc, code, body := browserSignIn(t, apiBase, browsers, "alice-sso")
	if code != http.StatusOK || !strings.Contains(body, "Signed in") {
		t.Fatalf("alice's sign-in: %d %s", code, body)
	}
	resp, err := hc.Get(apiBase + "/v1/session")
	if err != nil {
		t.Fatal(err)
	}
	var s struct {
		User, Via string
		Roles     []string
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || json.Unmarshal(b, &s) != nil || s.User != "oidc:alice-sso" || s.Via != "oidc" || strings.Join(s.Roles, ",") != api.RoleAuditor {
		t.Fatalf("session after OIDC sign-in: %d %s", resp.StatusCode, b)
	}
	resp, err = hc.Get(apiBase + "/v1/access?user=oidc:alice-sso")
	if err != nil {
		t.Fatal(err)
	}
	b, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(b), `"action":"session.create"`) || !strings.Contains(string(b), `"via":"oidc"`) {
		t.Fatalf("access log of the OIDC user: %d %s", resp.StatusCode, b)
	}

	if _, code, body := browserSignIn(t, apiBase, browsers, "bob-sso"); code != http.StatusForbidden {
		t.Fatalf("a user without a mapped role: %d %s", code, body)
	}
	stray := browsers.Client()
	resp, err = stray.Get(apiBase + "/v1/oidc/callback?state=x&code=y")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("a callback this browser did not start: %d", resp.StatusCode)
	}
}
