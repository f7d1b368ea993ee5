package demo

import (
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edgeseal/edgeseal/agent/api"
)

// TestClientOutcomes: the journey's ANSWER and SEQ columns come from the
// agent's answers as they did from the raw HTTP answers: "201" and the
// receipt's seq, "422 CODE" and the seq of the journaled refusal, a bare
// status when the body is not the API's error, a 5xx an error; a status
// of 404 is a refused export.
func TestClientOutcomes(t *testing.T) {
	sockDir, err := os.MkdirTemp("", "demo-client-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(sockDir) })
	socket := filepath.Join(sockDir, "a.sock")
	l, err := net.Listen("unix", socket)
	if err != nil {
		t.Fatal(err)
	}
	answers := map[string]struct {
		code int
		body string
	}{
		"ok":      {201, `{"exportId":"ok","seq":7,"leaf":"","journalSize":8,"digest":""}`},
		"refused": {422, `{"error":{"code":"schema_violation","message":"m","field":"data","seq":9}}`},
		"plain":   {403, `forbidden`},
		"broken":  {500, `{"error":{"code":"internal","message":"disk"}}`},
	}
	srv := &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Method == http.MethodPost && r.URL.Path == "/v1/exports":
			id := r.Header.Get(api.HeaderID)
			if id == "" { // the JSON envelope
				var b [512]byte
				n, _ := r.Body.Read(b[:])
				for k := range answers {
					if strings.Contains(string(b[:n]), `"id":"`+k+`"`) {
						id = k
					}
				}
			}
			a := answers[id]
			w.WriteHeader(a.code)
			w.Write([]byte(a.body))
		case r.URL.Path == "/v1/exports/gone":
			w.WriteHeader(http.StatusNotFound)
		case r.URL.Path == "/v1/exports/ok":
			w.Write([]byte(`{"id":"ok","principal":"p","status":"archived","seq":7}`))
		default:
			w.WriteHeader(http.StatusTeapot)
		}
	})}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	ac, err := api.NewClient(api.ClientOptions{Socket: socket, Timeout: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	c := &client{api: ac, tokens: map[string]string{"p": "tok"}}
	for _, tc := range []struct {
		id, media, outcome, seq string
	}{
		{"ok", "text/csv", "201", "7"},
		{"ok", "application/json", "201", "7"},
		{"refused", "application/json", "422 schema_violation", "9"},
		{"refused", "text/csv", "422 schema_violation", "9"},
		{"plain", "text/csv", "403", ""},
	} {
		outcome, seq, err := c.post(t.Context(), export{id: tc.id, principal: "p", media: tc.media, data: `{}`})
		if err != nil || outcome != tc.outcome || seq != tc.seq {
			t.Errorf("post %s as %s: %q %q %v, want %q %q", tc.id, tc.media, outcome, seq, err, tc.outcome, tc.seq)
		}
	}
	if _, _, err := c.post(t.Context(), export{id: "broken", principal: "p", media: "text/csv"}); err == nil || !strings.Contains(err.Error(), "demo: agent answered 500") {
		t.Errorf("post answered 500: %v", err)
	}
	if st, seq, err := c.exportStatus(t.Context(), "gone", "4"); err != nil || st != "refused" || seq != "4" {
		t.Errorf("status of a refused export: %q %q %v", st, seq, err)
	}
	if st, seq, err := c.exportStatus(t.Context(), "ok", ""); err != nil || st != "archived" || seq != "7" {
		t.Errorf("status of an archived export: %q %q %v", st, seq, err)
	}
	if err := c.seal(t.Context()); err == nil || !strings.Contains(err.Error(), "demo: seal answered 418") {
		t.Errorf("seal answered 418: %v", err)
	}
}
