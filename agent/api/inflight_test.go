package api

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/edgeseal/edgeseal/agent/config"
)

// holdBody starts a single export whose body of n bytes is announced but
// not sent: the server holds its share of MaxInflight while it reads. The
// returned func closes the connection.
func holdBody(t *testing.T, addr string, n int) func() {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(c, "POST /v1/exports HTTP/1.1\r\nHost: agent\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n{", tokExporter, n)
	return func() { c.Close() }
}

// TestInflightBound: single exports whose bodies are in flight take their
// Content-Length of MaxInflight; one that would go over is answered 503
// with Retry-After and code busy (not read, not journaled); once the
// bodies in flight are gone, it is taken.
func TestInflightBound(t *testing.T) {
	s := New(Options{MaxBody: 4096, MaxInflight: 8192, Principals: config.Principals{
		{Name: "n8n", TokenSHA256: config.HashToken(tokExporter), Roles: []config.Role{config.RoleExporter}},
	}})
	fc := &fakeCore{}
	s.SetCore(fc)
	hs := httptest.NewServer(s.Handler())
	t.Cleanup(hs.Close)
	addr := strings.TrimPrefix(hs.URL, "http://")

	good := `{"id":"x1","workflow":"w","app":"a","data":1}`
	// Two bodies of 4000 bytes in flight: 8000 of 8192.
	release := []func(){holdBody(t, addr, 4000), holdBody(t, addr, 4000)}
	t.Cleanup(func() { // before hs.Close, which waits for the requests
		for _, f := range release {
			f()
		}
	})
	deadline := time.Now().Add(time.Minute)
	for {
		s.bodies.mu.Lock()
		used := s.bodies.used
		s.bodies.mu.Unlock()
		if used == 8000 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("bodies in flight %d bytes, want 8000", used)
		}
		time.Sleep(10 * time.Millisecond)
	}
	big := `{"id":"x0","workflow":"w","app":"a","data":"` + strings.Repeat("x", 300) + `"}`
	r := call(t, hs, "POST", "/v1/exports", tokExporter, "application/json", big)
	if r.status != http.StatusServiceUnavailable || r.err.Code != CodeBusy || r.header.Get("Retry-After") == "" ||
		!strings.Contains(r.err.Message, "api.max_inflight") {
		t.Fatalf("over api.max_inflight: %d %q Retry-After %q, want 503 busy naming api.max_inflight with Retry-After", r.status, r.body, r.header.Get("Retry-After"))
	}
	if len(fc.rejected) != 0 {
		t.Fatalf("a refusal for lack of room was journaled: %v", fc.rejected)
	}
	// A small one still fits (192 bytes left).
	if r := call(t, hs, "POST", "/v1/exports", tokExporter, "application/json", good); r.status != http.StatusCreated {
		t.Fatalf("a %d-byte export with 8000 of 8192 bytes in flight: %d %s", len(good), r.status, r.body)
	}
	for _, f := range release {
		f()
	}
	for {
		s.bodies.mu.Lock()
		used := s.bodies.used
		s.bodies.mu.Unlock()
		if used == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("bodies in flight %d bytes after the clients left, want 0", used)
		}
		time.Sleep(10 * time.Millisecond)
	}
	// Chunked (length unknown): counts MaxBody; fits again now.
	req, _ := http.NewRequest("POST", hs.URL+"/v1/exports", bufio.NewReader(strings.NewReader(`{"id":"x2","workflow":"w","app":"a","data":2}`)))
	req.Header.Set("Authorization", "Bearer "+tokExporter)
	req.Header.Set("Content-Type", "application/json")
	resp, err := hs.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("chunked export after the room came back: %d", resp.StatusCode)
	}
}
