package browsertest

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
)

// The browser loads a page, types, clicks, reads what the page wrote,
// downloads a file the page offers and reports a script the page's
// Content-Security-Policy refused.
func TestBrowser(t *testing.T) {
	b := Start(t)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/app.js":
			w.Header().Set("Content-Type", "text/javascript")
			fmt.Fprint(w, `document.getElementById("go").addEventListener("click", () => {
  document.getElementById("out").textContent = "hello " + document.getElementById("name").value;
});`)
		case "/file.csv":
			w.Header().Set("Content-Type", "text/csv")
			w.Header().Set("Content-Disposition", `attachment; filename="t.csv"`)
			fmt.Fprint(w, "a,b\n1,2\n")
		default:
			w.Header().Set("Content-Security-Policy", "default-src 'self'")
			fmt.Fprint(w, `<!doctype html><input id=name><button id=go>go</button><p id=out></p>
<a id=dl href="/file.csv">csv</a><script>window.inline = 1</script><script src="/app.js"></script>`)
		}
	}))
	defer srv.Close()
	b.Navigate(srv.URL)
	b.Type("#name", "auditor")
	b.Click("#go")
	if got := b.WaitText("#out", "hello"); got != "hello auditor" {
		t.Fatalf("page shows %q", got)
	}
	name, data := b.Download("#dl")
	if name != "t.csv" || string(data) != "a,b\n1,2\n" {
		t.Fatalf("download %q: %q", name, data)
	}
	var seen []string
	for _, r := range b.Responses() {
		seen = append(seen, fmt.Sprintf("%s %s %d", r.Method, strings.TrimPrefix(r.URL, srv.URL), r.Status))
	}
	for _, want := range []string{"GET / 200", "GET /app.js 200", "GET /file.csv 200"} {
		if !slices.Contains(seen, want) {
			t.Errorf("responses %v lack %q", seen, want)
		}
	}
	if Eval[bool](b, `window.inline === 1`) {
		t.Fatal("an inline script ran despite the policy")
	}
	found := false
	for _, p := range b.Problems() {
		found = found || strings.Contains(p, "Content Security Policy")
	}
	if !found {
		t.Errorf("the refused inline script is not among the problems: %v", b.Problems())
	}
}
