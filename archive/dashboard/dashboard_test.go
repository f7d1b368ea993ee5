package dashboard

import (
	"encoding/csv"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/edgeseal/edgeseal/internal/browsertest"
)

// The handler serves the page and its assets with the Content-Security-
// Policy and the other headers, answers a repeat with 304, and nothing
// else: unknown paths 404, writes 405.
func TestHandler(t *testing.T) {
	srv := httptest.NewServer(Handler(Options{Name: "test archive", PackURL: "/v1/exports/{site}/{name}/{id}/pack", OIDCLogin: "/v1/oidc/login"}))
	defer srv.Close()
	for path, ctype := range map[string]string{
		"/": "text/html", "/assets/app.css": "text/css", "/assets/js/app.js": "text/javascript",
		"/assets/icon.svg": "image/svg+xml", "/assets/config.json": "application/json",
	} {
		r, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(r.Body)
		r.Body.Close()
		if r.StatusCode != 200 || !strings.HasPrefix(r.Header.Get("Content-Type"), ctype) || len(body) == 0 {
			t.Errorf("%s: %d %q (%d bytes)", path, r.StatusCode, r.Header.Get("Content-Type"), len(body))
		}
		if r.Header.Get("Content-Security-Policy") != CSP || r.Header.Get("X-Content-Type-Options") != "nosniff" || r.Header.Get("X-Frame-Options") != "DENY" {
			t.Errorf("%s: headers %v", path, r.Header)
		}
		if path == "/assets/config.json" && (!strings.Contains(string(body), `"packUrl":"/v1/exports/{site}/{name}/{id}/pack"`) || !strings.Contains(string(body), `"oidcLogin":"/v1/oidc/login"`)) {
			t.Errorf("config: %s", body)
		}
		req, _ := http.NewRequest("GET", srv.URL+path, nil)
		req.Header.Set("If-None-Match", r.Header.Get("ETag"))
		r2, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		r2.Body.Close()
		if r2.StatusCode != http.StatusNotModified {
			t.Errorf("%s again with its ETag: %d", path, r2.StatusCode)
		}
	}
	for _, path := range []string{"/index.html", "/assets/", "/assets/js/", "/assets/../doc.go", "/static/index.html", "/assets/js/nope.js"} {
		r, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		r.Body.Close()
		if r.StatusCode != http.StatusNotFound {
			t.Errorf("%s: %d, want 404", path, r.StatusCode)
		}
	}
	r, err := http.Post(srv.URL+"/", "text/plain", strings.NewReader("x"))
	if err != nil {
		t.Fatal(err)
	}
	r.Body.Close()
	if r.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST /: %d", r.StatusCode)
	}
	// No inline script or style in the page: the policy would refuse it.
	page, _ := static.ReadFile("static/index.html")
	if strings.Contains(string(page), "<script>") || strings.Contains(string(page), "style=") || strings.Contains(string(page), "<style") {
		t.Error("index.html has an inline script or style")
	}
}

// The page in Chromium against a stand-in of the API: refused sign-ins
// say why, a search shows the exports, an export shows its lineage with
// each hop's state and who read it, a table downloads as CSV, a new
// export shows without a reload, the charts and the fleet draw, an ended
// session goes back to sign-in, and nothing breaks the page's policy.
func TestPageWithStandInAPI(t *testing.T) {
	b := browsertest.Start(t)
	api := newFakeAPI()
	mux := http.NewServeMux()
	mux.Handle("/v1/", api)
	mux.Handle("/", Handler(Options{}))
	srv := httptest.NewServer(mux)
	defer srv.Close()

	b.Navigate(srv.URL + "/")
	b.WaitVisible("#signin")
	signIn := func(user, pw string) {
		b.Type("#user", user)
		b.Type("#password", pw)
		b.Click("#signin button[type=submit]")
	}
	signIn("alice", "wrong")
	b.WaitText("#signin-error", "Wrong user name or password")
	signIn("eve", "right")
	b.WaitText("#signin-error", "no archive role")
	signIn("alice", "right")
	b.WaitVisible("#exports-table table")
	b.WaitText("#exports-table", "EXP-2")
	if got := b.Text("#who"); !strings.Contains(got, "alice") {
		t.Errorf("who: %q", got)
	}

	// CSV of the table as shown.
	name, data := b.Download("#exports-table button.csv")
	rows, err := csv.NewReader(strings.NewReader(string(data))).ReadAll()
	if err != nil || name != "exports.csv" || len(rows) != 3 || rows[0][2] != "Export" || rows[1][2] != "EXP-2" || rows[2][2] != "EXP-1" {
		t.Errorf("CSV %s: %v %q", name, err, data)
	}

	// Lineage of the accepted export.
	b.Click(`#exports-table a.export-link[href$="EXP-1"]`)
	b.WaitVisible("#lineage")
	if n := b.Count("#lineage li.verified"); n != 7 {
		t.Errorf("%d hops verified, want 7: %s", n, b.Text("#lineage"))
	}
	b.WaitText("#lineage", "signed receipt names this bundle")
	b.Shot("standin-export.png")
	b.WaitText("#export-access-table", "export.get")
	if b.Count("#dl-pack") != 0 {
		t.Error("a pack button without a pack endpoint")
	}
	// The refused one: the workflow hop is refused, nothing logged or stored.
	b.Navigate(srv.URL + "/#/export/site1/dev1/EXP-2")
	b.WaitText("#lineage", "refused by policy")
	if b.Count("#lineage li.refused") != 1 || b.Count("#lineage li.missing") != 2 {
		t.Errorf("refused export lineage: %s", b.Text("#lineage"))
	}

	// Live: a new export shows in the open search without a reload.
	b.Click(`header nav a[data-page="exports"]`)
	b.WaitText("#exports-table", "EXP-1")
	b.WaitVisible("#live-state.on")
	api.mu.Lock()
	api.entries = append(api.entries, api.entry("EXP-3", 5, "accepted", ""))
	api.mu.Unlock()
	api.events <- "event: bundle.accepted\ndata: {\"bundle\":\"sha256:" + strings.Repeat("cd", 32) + "\",\"device\":\"site1/dev1\",\"logIndex\":1,\"exports\":1,\"refused\":0,\"time\":\"2026-12-07T10:00:00.000000Z\"}\n\n"
	api.events <- "event: export.indexed\ndata: {\"device\":\"site1/dev1\",\"export\":\"EXP-3\",\"status\":\"accepted\",\"bundle\":\"sha256:00\",\"time\":\"2026-12-07T10:00:00.000000Z\"}\n\n"
	api.events <- "event: alert\ndata: {\"time\":\"2026-12-07T10:00:01.000000Z\",\"severity\":\"alarm\",\"kind\":\"fork\",\"device\":\"site1/dev1\",\"bundleDigest\":\"sha256:00\",\"reasons\":[\"fork: two roots\"]}\n\n"
	b.WaitText("#live-list", "bundle accepted")
	b.WaitText("#live-list li.alert", "fork: two roots")
	b.WaitText("#exports-table tr.new", "EXP-3")
	b.Shot("standin-exports.png")

	b.Click(`header nav a[data-page="policy"]`)
	b.WaitVisible("#chart-status svg.chart rect")
	b.WaitVisible("#chart-by svg.chart rect")
	b.WaitText("#policies-table", "site1/dev1")
	b.Shot("standin-policy.png")
	b.Click(`header nav a[data-page="fleet"]`)
	b.WaitText("#fleet-table", "golden")
	b.WaitText("#fleet-table", "4 min") // the outbox age the agent reported
	b.Shot("standin-fleet.png")
	b.Click(`header nav a[data-page="access"]`)
	b.WaitText("#access-table", "session.create")

	// The session ends: the next read goes back to sign-in and says why.
	api.expire()
	b.Click(`header nav a[data-page="fleet"]`)
	b.WaitText("#signin-error", "session has ended")
	// Signing in again returns to the page; signing out ends the session.
	signIn("alice", "right")
	b.WaitText("#fleet-table", "golden")
	b.Click("#signout")
	b.WaitText("#signin-error", "You have signed out")
	if st := browsertest.Eval[int](b, `fetch("/v1/session").then(r => r.status)`); st != http.StatusUnauthorized {
		t.Errorf("the session after signing out: %d", st)
	}
	if p := b.Problems(); len(p) > 0 {
		t.Errorf("the page reported problems: %v", p)
	}
}
