package tlog_test

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestHandlerServesCommittedResources checks what is served and how it
// may be cached.
func TestHandlerServesCommittedResources(t *testing.T) {
	for _, backend := range []string{"posix", "journal"} {
		t.Run(backend, func(t *testing.T) { testServesCommitted(t, backend) })
	}
}

func testServesCommitted(t *testing.T, backend string) {
	sl := newServedLogOf(t, backend, 300) // bundles 000 (full) and 001.p/44
	for _, tc := range []struct {
		path, cache string
		size        int
	}{
		{"tile/0/000", "public, max-age=31536000, immutable", 256 * 32},
		{"tile/0/001.p/44", "no-cache", 44 * 32},
		{"tile/1/000.p/1", "no-cache", 32},
		{"tile/entries/000", "public, max-age=31536000, immutable", -1},
		{"tile/entries/001.p/44", "no-cache", -1},
		{"checkpoint", "no-cache", len(sl.cps[0].Note)},
	} {
		resp, err := sl.srv.Client().Get(sl.srv.URL + "/log/" + tc.path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("%s: %d", tc.path, resp.StatusCode)
			continue
		}
		if got := resp.Header.Get("Cache-Control"); got != tc.cache {
			t.Errorf("%s: Cache-Control %q, want %q", tc.path, got, tc.cache)
		}
		if tc.size >= 0 && resp.ContentLength != int64(tc.size) {
			t.Errorf("%s: %d bytes, want %d", tc.path, resp.ContentLength, tc.size)
		}
	}
	// An older width, whether or not it was ever written, is the prefix
	// of the current one; so is an older entry bundle width.
	_, wide := sl.get(t, "tile/0/001.p/44")
	if code, narrow := sl.get(t, "tile/0/001.p/10"); code != http.StatusOK || string(narrow) != string(wide[:10*32]) {
		t.Errorf("tile/0/001.p/10: %d, not the prefix of the wider tile", code)
	}
	_, wideB := sl.get(t, "tile/entries/001.p/44")
	if code, narrow := sl.get(t, "tile/entries/001.p/3"); code != http.StatusOK || !strings.HasPrefix(string(wideB), string(narrow)) || strings.Count(string(narrow), "receipt entry") != 3 {
		t.Errorf("tile/entries/001.p/3: %d %q", code, narrow)
	}
	// HEAD: the headers, no body.
	resp, err := sl.srv.Client().Head(sl.srv.URL + "/log/tile/0/000")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.ContentLength != 256*32 {
		t.Fatalf("HEAD: %d, %d bytes", resp.StatusCode, resp.ContentLength)
	}
}

// TestHandlerRefuses checks every forbidden request is refused: other
// methods, paths not in canonical form, resources beyond the published
// checkpoint, folders (no listing) and the log's private state.
func TestHandlerRefuses(t *testing.T) {
	for _, backend := range []string{"posix", "journal"} {
		t.Run(backend, func(t *testing.T) { testRefuses(t, backend) })
	}
}

func testRefuses(t *testing.T, backend string) {
	sl := newServedLogOf(t, backend, 300)
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for _, m := range []string{http.MethodPost, http.MethodPut, http.MethodDelete} {
		req, _ := http.NewRequest(m, sl.srv.URL+"/log/checkpoint", strings.NewReader("x"))
		resp, err := sl.srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != "GET, HEAD" {
			t.Errorf("%s: %d, Allow %q", m, resp.StatusCode, resp.Header.Get("Allow"))
		}
	}
	for _, p := range []string{
		"", "tile", "tile/", "tile/0", "tile/0/", "tile/entries", "tile/entries/", "tile/0/x000/",
		"tile/0/0", "tile/0/00", "tile/0/0000", "tile/00/000", "tile/+0/000", "tile/0/x000/000",
		"tile/0/000.p/0", "tile/0/001.p/044", "tile/0/001.p/256", "tile/0/001.p/", "tile/0/001.p",
		"tile/0/000/", "tile/8/000", "tile/64/000", "tile/0/x001/000", "checkpoint/", "Checkpoint",
		"tile/0/../0/000", "tile/0/./000", "tile//0/000", ".state/treeState", ".state/version",
		"tile/0/001.p/45", // wider than the published tree
		"tile/0/002", "tile/0/001", "tile/entries/001", "tile/entries/002.p/1", "tile/1/000",
		"tile/data/000", "tile/8/0/000",
	} {
		// The handler itself, and through a server whose mux may
		// redirect an unclean path (never answered there).
		rec := httptest.NewRecorder()
		sl.h.ServeHTTP(rec, &http.Request{Method: http.MethodGet, URL: &url.URL{Path: "/" + p}})
		if rec.Code != http.StatusNotFound {
			t.Errorf("handler %q: %d, want 404", p, rec.Code)
		}
		resp, err := noRedirect.Get(sl.srv.URL + "/log/" + p)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Errorf("server %q: %d", p, resp.StatusCode)
		}
	}
	for _, raw := range []string{"/log/tile/0/%30%30%30", "/log/%63heckpoint", "/log/tile/0/000%2F"} {
		resp, err := sl.srv.Client().Get(sl.srv.URL + raw)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("%q: %d, want 404", raw, resp.StatusCode)
		}
	}
}

// TestHandlerRefusesLinks checks that a symbolic link is never followed:
// not as the file, not as a folder on the way, even one pointing inside
// the log.
func TestHandlerRefusesLinks(t *testing.T) {
	sl := newServedLog(t, 300)
	// The full tile replaced by a link to a copy of itself.
	tile := filepath.Join(sl.dir, "tile/0/000")
	data, err := os.ReadFile(tile)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(sl.dir, "copy"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(tile); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../../copy", tile); err != nil {
		t.Fatal(err)
	}
	if code, _ := sl.get(t, "tile/0/000"); code != http.StatusNotFound {
		t.Errorf("linked tile: %d, want 404", code)
	}
	// The entries folder replaced by a link to the real one.
	ents := filepath.Join(sl.dir, "tile/entries")
	if err := os.Rename(ents, ents+"-real"); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("entries-real", ents); err != nil {
		t.Fatal(err)
	}
	if code, _ := sl.get(t, "tile/entries/000"); code != http.StatusNotFound {
		t.Errorf("bundle through a linked folder: %d, want 404", code)
	}
	// A link to a file outside the log.
	outside := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(outside, make([]byte, 64), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(sl.dir, "tile/0/001.p/44")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(sl.dir, "tile/0/001.p/44")); err != nil {
		t.Fatal(err)
	}
	if code, _ := sl.get(t, "tile/0/001.p/44"); code != http.StatusNotFound {
		t.Errorf("link outside the log: %d, want 404", code)
	}
	// A folder where a file belongs is not listed.
	if err := os.Remove(filepath.Join(sl.dir, "tile/1/000.p/1")); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(sl.dir, "tile/1/000.p/1"), 0o755); err != nil {
		t.Fatal(err)
	}
	if code, body := sl.get(t, "tile/1/000.p/1"); code != http.StatusNotFound {
		t.Errorf("folder: %d %q, want 404", code, body)
	}
}
