package dashboard

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"encoding/json"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strings"
	"time"
)

//go:embed static
var static embed.FS

// CSP is the Content-Security-Policy of every answer: the page's own
// scripts, styles, images and connections only.
const CSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// Options are what the page learns from the server about the archive it
// runs on.
type Options struct {
	// Name is shown in the page's title bar (the archive's name); "" shows
	// "edgeseal archive".
	Name string
	// PackURL, when set, is the path of the evidence pack of one export, with
	// {site}, {name} and {id} replaced by the export's device and id
	// (path-escaped); the export page then offers a download button. Empty:
	// no button.
	PackURL string
	// OIDCLogin, when set, is the path that signs a browser in from the
	// organization's identity provider (the API's /v1/oidc/login); the
	// sign-in page then offers it beside the local accounts.
	OIDCLogin string
}

type file struct {
	body  []byte
	ctype string
	etag  string
}

// Handler serves the dashboard: "/" is the page, "/assets/..." its files,
// "/assets/config.json" the Options the page reads. Anything else is 404.
func Handler(o Options) http.Handler {
	files := map[string]file{}
	add := func(name, fname string, body []byte) {
		ctype := mime.TypeByExtension(path.Ext(fname))
		switch path.Ext(fname) {
		case ".js":
			ctype = "text/javascript; charset=utf-8"
		case ".css":
			ctype = "text/css; charset=utf-8"
		case ".html":
			ctype = "text/html; charset=utf-8"
		case ".json":
			ctype = "application/json; charset=utf-8"
		case ".svg":
			ctype = "image/svg+xml"
		}
		sum := sha256.Sum256(body)
		files[name] = file{body: body, ctype: ctype, etag: `"` + hex.EncodeToString(sum[:8]) + `"`}
	}
	_ = fs.WalkDir(static, "static", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := static.ReadFile(p)
		if err != nil {
			return err
		}
		name := strings.TrimPrefix(p, "static/")
		if name == "index.html" {
			add("/", name, b)
			return nil
		}
		add("/assets/"+name, name, b)
		return nil
	})
	if o.Name == "" {
		o.Name = "edgeseal archive"
	}
	cfg, _ := json.Marshal(struct {
		Name      string `json:"name"`
		PackURL   string `json:"packUrl,omitempty"`
		OIDCLogin string `json:"oidcLogin,omitempty"`
	}{o.Name, o.PackURL, o.OIDCLogin})
	add("/assets/config.json", "config.json", cfg)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", CSP)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			h.Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		f, ok := files[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		h.Set("Content-Type", f.ctype)
		h.Set("Cache-Control", "no-cache")
		h.Set("ETag", f.etag)
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(f.body))
	})
}
