package api

import (
	"crypto/ed25519"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edgeseal/edgeseal/archive"
	"github.com/edgeseal/edgeseal/archive/dashboard"
)

// The mounted dashboard: its page and files need no session and carry
// the page's policy; /v1/policies and /v1/alerts need one, answer pages
// of items, refuse unknown parameters, and each read is in the access log.
func TestMountDashboard(t *testing.T) {
	dir := t.TempDir()
	a, err := archive.Open(t.Context(), archive.Options{Dir: filepath.Join(dir, "archive"), Key: ed25519.NewKeyFromSeed(make([]byte, 32))})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	users := OpenUsers(filepath.Join(dir, "users.json"))
	if err := users.Add("alice", []string{RoleAuditor}, pw, time.Now()); err != nil {
		t.Fatal(err)
	}
	srv, err := New(Options{Archive: a, Users: users})
	if err != nil {
		t.Fatal(err)
	}
	srv.MountDashboard(dashboard.Options{})
	hs := httptest.NewServer(srv)
	defer hs.Close()
	get := func(path, tok string) (int, http.Header, []byte) {
		t.Helper()
		req, _ := http.NewRequestWithContext(t.Context(), "GET", hs.URL+path, nil)
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		r, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Body.Close()
		b, _ := io.ReadAll(r.Body)
		return r.StatusCode, r.Header, b
	}
	for _, p := range []string{"/", "/assets/js/app.js"} {
		code, h, _ := get(p, "")
		if code != http.StatusOK || h.Get("Content-Security-Policy") != dashboard.CSP {
			t.Errorf("%s without a session: %d, CSP %q", p, code, h.Get("Content-Security-Policy"))
		}
	}
	if code, _, _ := get("/nothing", ""); code != http.StatusNotFound {
		t.Errorf("/nothing: %d", code)
	}
	for _, p := range []string{"/v1/policies", "/v1/alerts"} {
		if code, _, _ := get(p, ""); code != http.StatusUnauthorized {
			t.Errorf("%s without a session: %d", p, code)
		}
	}
	body := strings.NewReader(`{"user":"alice","password":"` + pw + `"}`)
	r, err := http.Post(hs.URL+"/v1/session", "application/json", body)
	if err != nil {
		t.Fatal(err)
	}
	var sess sessionJSON
	_ = json.NewDecoder(r.Body).Decode(&sess)
	r.Body.Close()
	for p, want := range map[string]int{
		"/v1/policies": 200, "/v1/policies?device=s1/d1": 200, "/v1/alerts?limit=5": 200,
		"/v1/alerts?limit=0": 400, "/v1/policies?device=nodevice": 400, "/v1/alerts?x=1": 400,
	} {
		code, _, b := get(p, sess.Token)
		if code != want {
			t.Errorf("%s: %d %s, want %d", p, code, b, want)
			continue
		}
		if code == 200 && string(b) != `{"items":[]}`+"\n" {
			t.Errorf("%s on an empty archive: %s", p, b)
		}
	}
	page, err := a.SearchAccess(t.Context(), archive.AccessQuery{User: "alice", Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for _, it := range page.Items {
		seen[it.Entry.Action]++
	}
	if seen["policies.list"] != 3 || seen["alerts.list"] != 3 {
		t.Errorf("access log: %v", seen)
	}
}
