package readclient_test

import (
	"crypto/sha256"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/edgeseal/edgeseal/archive/readclient"
	"github.com/edgeseal/edgeseal/bundle/wire"
)

// fakeAPI answers the three routes the client uses as docs/archive-api.md
// specifies them: bearer sessions, paged search, bundles and receipts.
func fakeAPI(t *testing.T, bundle []byte, tamper bool) *httptest.Server {
	digest := wire.FormatHash(sha256.Sum256(bundle))
	entries := []map[string]any{
		{"device": "site1/dev1", "export": "E-1", "seq": 3, "type": "export", "status": "accepted", "principal": "p1", "bundle": digest, "extra": "ignored"},
		{"device": "site1/dev1", "export": "E-1", "seq": 2, "type": "export.rejected", "status": "refused", "principal": "p1"},
		{"device": "site1/dev2", "export": "E-1", "seq": 9, "type": "export", "status": "accepted", "principal": "p2", "bundle": digest},
	}
	fail := func(w http.ResponseWriter, code int, e string) {
		w.WriteHeader(code)
		_ = json.NewEncoder(w).Encode(map[string]string{"error": e, "message": e + " here"})
	}
	return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer tok" {
			fail(w, 401, "unauthorized")
			return
		}
		switch {
		case r.URL.Path == "/v1/exports":
			q := r.URL.Query()
			if q.Get("export") != "E-1" || q.Get("status") != "accepted" {
				fail(w, 400, "bad_request")
				return
			}
			page := map[string]any{"items": entries[:2], "next": "c2"}
			if q.Get("cursor") == "c2" {
				page = map[string]any{"items": entries[2:]}
			}
			_ = json.NewEncoder(w).Encode(page)
		case r.URL.Path == "/v1/bundles/"+digest:
			b := append([]byte(nil), bundle...)
			if tamper {
				b[0] ^= 1
			}
			_, _ = w.Write(b)
		case r.URL.Path == "/v1/bundles/"+digest+"/receipt":
			_, _ = w.Write([]byte(`{"receipt":true}`))
		default:
			fail(w, 404, "not_found")
		}
	}))
}

// TestClient: search follows the pages and keeps export records of the id,
// a bundle is checked against its digest, errors carry the API's code,
// and the token and transport rules hold.
func TestClient(t *testing.T) {
	bundle := []byte("bundle bytes")
	digest := wire.FormatHash(sha256.Sum256(bundle))
	srv := fakeAPI(t, bundle, false)
	defer srv.Close()
	c, err := readclient.New(srv.URL, "tok", nil)
	if err != nil {
		t.Fatal(err)
	}
	es, err := c.Exports(t.Context(), "E-1", "", "")
	if err != nil || len(es) != 2 || es[0].Principal != "p1" || es[1].Device != "site1/dev2" {
		t.Fatalf("search: %+v %v", es, err)
	}
	if b, err := c.Bundle(t.Context(), digest); err != nil || string(b) != "bundle bytes" {
		t.Fatalf("bundle: %q %v", b, err)
	}
	if r, err := c.Receipt(t.Context(), digest); err != nil || !strings.Contains(string(r), "receipt") {
		t.Fatalf("receipt: %q %v", r, err)
	}
	var se *readclient.StatusError
	if _, err := c.Bundle(t.Context(), wire.FormatHash(sha256.Sum256([]byte("other")))); !errors.As(err, &se) || se.Status != 404 || se.Code != "not_found" {
		t.Fatalf("missing bundle: %v", err)
	}
	bad, _ := readclient.New(srv.URL, "wrong", nil)
	if _, err := bad.Exports(t.Context(), "E-1", "", ""); !errors.As(err, &se) || se.Status != 401 {
		t.Fatalf("wrong token: %v", err)
	}
	lying := fakeAPI(t, bundle, true)
	defer lying.Close()
	lc, _ := readclient.New(lying.URL, "tok", nil)
	if _, err := lc.Bundle(t.Context(), digest); err == nil || !strings.Contains(err.Error(), "other bytes") {
		t.Fatalf("bundle of other bytes: %v", err)
	}
	for _, u := range []string{"http://archive.example:8443", "ftp://127.0.0.1", "https://", "https://h/x?y=1"} {
		if _, err := readclient.New(u, "tok", nil); err == nil {
			t.Errorf("%s: accepted", u)
		}
	}
	if _, err := readclient.New("https://archive.example", "", nil); err == nil {
		t.Error("no token: accepted")
	}
}
