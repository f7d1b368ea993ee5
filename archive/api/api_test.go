package api

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgeseal/edgeseal/archive"
	"github.com/edgeseal/edgeseal/internal/testpki"
)

const pw = "correct horse battery staple"

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// testServer is the API of a real archive served over real TLS.
type testServer struct {
	url   string
	hc    *http.Client
	users *Users
	clk   *clock
	a     *archive.Archive
}

func startServer(t *testing.T, ttl time.Duration) *testServer {
	t.Helper()
	dir := t.TempDir()
	a, err := archive.Open(t.Context(), archive.Options{Dir: filepath.Join(dir, "archive"), Key: ed25519.NewKeyFromSeed(make([]byte, 32))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	clk := &clock{t: time.Now()}
	users := OpenUsers(filepath.Join(dir, "users.json"))
	srv, err := New(Options{Archive: a, Users: users, SessionTTL: ttl, SecureCookie: true, Now: clk.now})
	if err != nil {
		t.Fatal(err)
	}
	pool := testpki.SelfSigned(t, filepath.Join(dir, "c.pem"), filepath.Join(dir, "k.pem"), "api")
	cert, err := tls.LoadX509KeyPair(filepath.Join(dir, "c.pem"), filepath.Join(dir, "k.pem"))
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: srv, ReadHeaderTimeout: 5 * time.Second}
	go hs.Serve(ln)
	t.Cleanup(func() { hs.Close() })
	return &testServer{url: "https://" + ln.Addr().String(), users: users, clk: clk, a: a,
		hc: &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}}
}

func (s *testServer) call(t *testing.T, method, path, tok string, body []byte) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequestWithContext(t.Context(), method, s.url+path, bytes.NewReader(body))
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := s.hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	_, _ = b.ReadFrom(resp.Body)
	return resp.StatusCode, b.Bytes()
}

func (s *testServer) signIn(t *testing.T, user string) string {
	t.Helper()
	body, _ := json.Marshal(map[string]string{"user": user, "password": pw})
	code, b := s.call(t, "POST", "/v1/session", "", body)
	if code != http.StatusOK {
		t.Fatalf("sign in %s: %d %s", user, code, b)
	}
	var out sessionJSON
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out.Token
}

// TestSessionExpiry: a session is refused once its TTL has passed (server
// side, whatever the client keeps), after sign-out, and once its account
// is disabled.
func TestSessionExpiry(t *testing.T) {
	s := startServer(t, time.Hour)
	if err := s.users.Add("alice", []string{RoleAuditor}, pw, s.clk.now()); err != nil {
		t.Fatal(err)
	}
	tok := s.signIn(t, "alice")
	if code, b := s.call(t, "GET", "/v1/session", tok, nil); code != http.StatusOK {
		t.Fatalf("fresh session: %d %s", code, b)
	}
	s.clk.add(59 * time.Minute)
	if code, _ := s.call(t, "GET", "/v1/exports", tok, nil); code != http.StatusOK {
		t.Fatalf("session before its expiry: %d", code)
	}
	s.clk.add(time.Minute)
	if code, b := s.call(t, "GET", "/v1/exports", tok, nil); code != http.StatusUnauthorized || !strings.Contains(string(b), `"unauthorized"`) {
		t.Fatalf("expired session: %d %s", code, b)
	}
	tok = s.signIn(t, "alice")
	if code, _ := s.call(t, "DELETE", "/v1/session", tok, nil); code != http.StatusNoContent {
		t.Fatalf("sign out: %d", code)
	}
	if code, _ := s.call(t, "GET", "/v1/session", tok, nil); code != http.StatusUnauthorized {
		t.Fatalf("after sign out: %d", code)
	}
	tok = s.signIn(t, "alice")
	if err := s.users.Disable("alice", s.clk.now()); err != nil {
		t.Fatal(err)
	}
	if code, _ := s.call(t, "GET", "/v1/session", tok, nil); code != http.StatusUnauthorized {
		t.Fatalf("session of a disabled account: %d", code)
	}
	// Refused calls are JSON errors; unknown routes and methods too.
	for _, c := range []struct {
		method, path string
		code         int
	}{{"GET", "/v1/nope", http.StatusNotFound}, {"PUT", "/v1/exports", http.StatusMethodNotAllowed}} {
		code, b := s.call(t, c.method, c.path, "", nil)
		var e apiError
		if code != c.code || json.Unmarshal(b, &e) != nil || e.Error == "" {
			t.Errorf("%s %s: %d %s", c.method, c.path, code, b)
		}
	}
}

// TestSignInBounds: malformed sign-in bodies are 400, an exporter-only
// account 403, and the refusal of a wrong password is the same as that of
// an unknown user.
func TestSignInBounds(t *testing.T) {
	s := startServer(t, time.Hour)
	_ = s.users.Add("eve", []string{RoleExporter}, pw, s.clk.now())
	_ = s.users.Add("bob", []string{RoleOperator, RoleExporter}, pw, s.clk.now())
	for _, body := range []string{"", "{}", `{"user":"a"}`, `{"user":"A B","password":"x"}`, `{"user":"a","password":"x","x":1}`, strings.Repeat("x", MaxBodyLen+1), `{"user":"a","password":"x"} {}`} {
		if code, b := s.call(t, "POST", "/v1/session", "", []byte(body)); code != http.StatusBadRequest {
			t.Errorf("body %.40q: %d %s", body, code, b)
		}
	}
	body, _ := json.Marshal(map[string]string{"user": "eve", "password": pw})
	if code, _ := s.call(t, "POST", "/v1/session", "", body); code != http.StatusForbidden {
		t.Errorf("exporter-only account: %d", code)
	}
	wrong, _ := json.Marshal(map[string]string{"user": "bob", "password": "not the password"})
	unknown, _ := json.Marshal(map[string]string{"user": "zed", "password": "not the password"})
	c1, b1 := s.call(t, "POST", "/v1/session", "", wrong)
	c2, b2 := s.call(t, "POST", "/v1/session", "", unknown)
	if c1 != http.StatusUnauthorized || c1 != c2 || !bytes.Equal(b1, b2) {
		t.Errorf("wrong password %d %s, unknown user %d %s", c1, b1, c2, b2)
	}
	tok := s.signIn(t, "bob")
	var got sessionJSON
	_, b := s.call(t, "GET", "/v1/session", tok, nil)
	if json.Unmarshal(b, &got) != nil || strings.Join(got.Roles, ",") != RoleOperator {
		t.Errorf("session roles: %s (the exporter role grants nothing here)", b)
	}
}

// TestCheckListen: off loopback without TLS is refused.
func TestCheckListen(t *testing.T) {
	for addr, ok := range map[string]bool{"127.0.0.1:8443": true, "[::1]:8443": true, "localhost:1": true, "0.0.0.0:8443": false, ":8443": false, "192.0.2.1:443": false, "example.com:443": false, "nope": false} {
		if err := CheckListen(addr, false); (err == nil) != ok {
			t.Errorf("CheckListen(%q, no TLS) = %v", addr, err)
		}
	}
	if err := CheckListen("0.0.0.0:8443", true); err != nil {
		t.Errorf("with TLS: %v", err)
	}
}

// TestUsersFile: written 0600; a group-readable file, a symlink and a
// malformed file are refused; passwords are argon2id with the stated
// parameters and read never from argv (the CLI's concern) but checked in
// length here.
func TestUsersFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "users.json")
	u := OpenUsers(p)
	now := time.Now()
	if err := u.Add("alice", []string{RoleAuditor}, pw, now); err != nil {
		t.Fatal(err)
	}
	if err := u.Add("alice", []string{RoleAuditor}, pw, now); err == nil {
		t.Error("a second alice was added")
	}
	if err := u.Add("bob", []string{"root"}, pw, now); err == nil {
		t.Error("an unknown role was taken")
	}
	if err := u.Add("bob", []string{RoleAuditor}, "short", now); err == nil {
		t.Error("a short password was taken")
	}
	fi, err := os.Stat(p)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("users file mode %v %v", fi.Mode(), err)
	}
	list, err := u.List()
	if err != nil || len(list) != 1 || !strings.HasPrefix(list[0].Hash, "$argon2id$v=19$m=65536,t=3,p=2$") {
		t.Fatalf("list %+v %v", list, err)
	}
	if _, err := u.Authenticate("alice", pw); err != nil {
		t.Fatal(err)
	}
	if err := u.SetPassword("alice", pw+"2", now); err != nil {
		t.Fatal(err)
	}
	if _, err := u.Authenticate("alice", pw); err != ErrBadCredentials {
		t.Fatalf("old password after passwd: %v", err)
	}
	if err := os.Chmod(p, 0o640); err != nil {
		t.Fatal(err)
	}
	if _, err := u.List(); err == nil {
		t.Error("a group-readable users file was read")
	}
	_ = os.Chmod(p, 0o600)
	link := filepath.Join(dir, "link.json")
	if err := os.Symlink(p, link); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenUsers(link).List(); err == nil {
		t.Error("a users file behind a symlink was read")
	}
	if err := OpenUsers(link).Add("carol", []string{RoleAuditor}, pw, now); err == nil {
		t.Error("a users file behind a symlink was written")
	}
	if err := os.WriteFile(p, []byte(`{"v":1,"users":[{"name":"x","roles":["auditor"],"hash":"plain"}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := u.List(); err == nil {
		t.Error("a hash that is not argon2id was taken")
	}
}

// TestHandleMount: a mounted page runs only for a session with its role,
// after its access entry.
func TestHandleMount(t *testing.T) {
	dir := t.TempDir()
	a, err := archive.Open(t.Context(), archive.Options{Dir: dir, Key: ed25519.NewKeyFromSeed(make([]byte, 32))})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	u := OpenUsers(filepath.Join(dir, "users.json"))
	_ = u.Add("olga", []string{RoleOperator}, pw, time.Now())
	_ = u.Add("alice", []string{RoleAuditor}, pw, time.Now())
	srv, _ := New(Options{Archive: a, Users: u})
	srv.Handle("GET /ui/audit", "page", []string{RoleAuditor}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("page")) }))
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	hs := &http.Server{Handler: srv, ReadHeaderTimeout: time.Second}
	go hs.Serve(ln)
	defer hs.Close()
	ts := &testServer{url: "http://" + ln.Addr().String(), hc: http.DefaultClient}
	for user, want := range map[string]int{"olga": http.StatusForbidden, "alice": http.StatusOK} {
		tok := ts.signIn(t, user)
		if code, _ := ts.call(t, "GET", "/ui/audit", tok, nil); code != want {
			t.Errorf("%s: %d, want %d", user, code, want)
		}
	}
	p, err := a.SearchAccess(context.Background(), archive.AccessQuery{})
	if err != nil {
		t.Fatal(err)
	}
	var pages []string
	for _, it := range p.Items {
		if it.Entry.Action == "page" {
			pages = append(pages, it.Entry.User+" "+it.Entry.Outcome+" "+it.Entry.Target.Path)
		}
	}
	slices.Sort(pages)
	if strings.Join(pages, ",") != "alice ok /ui/audit,olga forbidden /ui/audit" {
		t.Errorf("page access entries %q", pages)
	}
}
