package api

import (
	"context"
	"encoding/json"
	"encoding/pem"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edgeseal/edgeseal/agent"
	"github.com/edgeseal/edgeseal/store"
)

// infoCore is fakeCore knowing export "known" of every principal.
type infoCore struct{ *fakeCore }

func (c infoCore) ExportStatus(_ context.Context, principal, id string) (*agent.ExportInfo, error) {
	if id != "known" {
		return nil, &agent.NotFoundError{What: "export", ID: id}
	}
	return &agent.ExportInfo{ID: id, Principal: principal, Status: agent.StatusSealed, Seq: 4,
		Record: json.RawMessage(`{"k":1}`), Proof: []string{"sha256:00"}}, nil
}

// unixServer serves s on a unix socket and returns the socket's path.
func unixServer(t *testing.T, s *Server) string {
	t.Helper()
	path := filepath.Join(shortDir(t), "agent.sock")
	ln, err := ListenUnix(context.Background(), path, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve(ln)
	t.Cleanup(func() { s.Shutdown(context.Background()) })
	return path
}

func newClient(t *testing.T, o ClientOptions) *Client {
	t.Helper()
	c, err := NewClient(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.CloseIdleConnections)
	return c
}

// statusErr asserts err is a *StatusError with status and code.
func statusErr(t *testing.T, what string, err error, status int, code string) *StatusError {
	t.Helper()
	var se *StatusError
	if !errors.As(err, &se) || se.Status != status || se.Info.Code != code {
		t.Fatalf("%s: got %v, want a *StatusError %d %s", what, err, status, code)
	}
	return se
}

// The client over a unix socket against the real server: every typed
// call, its results and its typed errors.
func TestClientUnix(t *testing.T) {
	hs, fc, s := testServer(t)
	hs.Close()
	sock := unixServer(t, s)
	ctx := context.Background()
	anon := newClient(t, ClientOptions{Socket: sock, Timeout: time.Minute})
	exp := anon.WithToken(tokExporter)

	if err := anon.Healthz(ctx); err != nil {
		t.Fatal(err)
	}
	statusErr(t, "ready before the core", anon.Ready(ctx), 503, CodeNotReady)
	s.SetCore(infoCore{fc})
	if err := anon.Ready(ctx); err != nil {
		t.Fatal(err)
	}

	meta := ExportMeta{ID: "c1", Workflow: "w", App: "x", Purpose: "p"}
	res, err := exp.Export(ctx, meta, "text/csv", []byte("a,b\n1,2\n"))
	if err != nil || res.Status != 201 || res.Receipt.ExportID != "c1" || res.Receipt.Seq != 7 || res.Receipt.Duplicate {
		t.Fatalf("export: %+v, %v", res, err)
	}
	if !strings.Contains(string(res.Body), `"exportId":"c1"`) {
		t.Fatalf("export body: %s", res.Body)
	}
	res, err = exp.Export(ctx, meta, "text/csv", []byte("a,b\n1,2\n"))
	if err != nil || res.Status != 200 || !res.Receipt.Duplicate {
		t.Fatalf("repeat: %+v, %v", res, err)
	}
	res, err = exp.ExportJSON(ctx, ExportMeta{ID: "j1", Workflow: "w", App: "x"}, json.RawMessage(`{"k":1}`))
	if err != nil || res.Status != 201 || res.Receipt.ExportID != "j1" {
		t.Fatalf("json export: %+v, %v", res, err)
	}
	_, err = exp.ExportJSON(ctx, ExportMeta{Workflow: "nope", App: "x"}, json.RawMessage(`1`))
	se := statusErr(t, "unknown workflow", err, 422, "unknown_workflow")
	if se.Info.Field != "workflow" || se.Info.Seq == nil || se.Info.ExportID != "r" || se.RetryAfter != 0 {
		t.Fatalf("unknown workflow error: %+v", se)
	}
	_, err = exp.ExportEnvelope(ctx, []byte(`{"workflow":`))
	statusErr(t, "malformed", err, 400, CodeMalformedJSON)
	_, err = anon.Export(ctx, meta, "text/csv", []byte("x"))
	statusErr(t, "no token", err, 401, CodeUnauthorized)
	_, err = anon.WithToken("nope").Status(ctx)
	statusErr(t, "bad token", err, 401, CodeUnauthorized)
	_, err = exp.Status(ctx)
	statusErr(t, "status as exporter", err, 403, CodeForbidden)

	ans, err := exp.Batch(ctx, [][]byte{[]byte(`{"id":"b1","workflow":"w","app":"x","data":1}`), []byte(`{"workflow":"q","app":"x","data":1}`)})
	if err != nil || len(ans) != 2 || ans[0].Line != 1 || ans[0].Status != 201 || ans[0].Receipt == nil ||
		ans[0].Receipt.ExportID != "b1" || ans[1].Status != 422 || ans[1].Error == nil || ans[1].Error.Code != "unknown_workflow" {
		t.Fatalf("batch: %+v, %v", ans, err)
	}
	_, err = exp.BatchBody(ctx, []byte(strings.Repeat(`{"data":1}`+"\n", 4)))
	statusErr(t, "batch too many", err, 413, CodeTooManyLines)

	st, err := anon.WithToken(tokOperator).Status(ctx)
	if err != nil || st.JournalSize != 3 {
		t.Fatalf("status: %+v, %v", st, err)
	}
	cp, err := exp.Checkpoint(ctx)
	if err != nil || cp.Size != 3 {
		t.Fatalf("checkpoint: %+v, %v", cp, err)
	}
	sa, err := anon.WithToken(tokOperator).Seal(ctx)
	if err != nil || sa.Sealed {
		t.Fatalf("seal: %+v, %v", sa, err)
	}
	_, err = anon.WithToken(tokAuditor).Seal(ctx)
	statusErr(t, "seal as auditor", err, 403, CodeForbidden)

	info, err := anon.WithToken(tokAuditor).ExportStatus(ctx, "known", "n8n")
	if err != nil || info.Principal != "n8n" || info.Status != agent.StatusSealed || info.Seq != 4 ||
		string(info.Record) != `{"k":1}` || len(info.Proof) != 1 {
		t.Fatalf("export status: %+v, %v", info, err)
	}
	_, err = exp.ExportStatus(ctx, "a/b c", "")
	statusErr(t, "unknown export", err, 404, CodeNotFound)

	raw, err := exp.Do(ctx, Request{Method: http.MethodDelete, Path: "/v1/exports"})
	if err != nil || raw.Status != 405 || raw.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("raw call: %+v, %v", raw, err)
	}
}

// A 503 carries the API's Retry-After; the error says the call may be
// tried again.
func TestClientRetryAfter(t *testing.T) {
	_, fc, s := testServer(t)
	s.SetCore(fc)
	fc.fail = &store.BusyError{Pending: 9, Limit: 8}
	c := newClient(t, ClientOptions{Socket: unixServer(t, s), Token: tokExporter})
	_, err := c.ExportJSON(context.Background(), ExportMeta{Workflow: "w", App: "x"}, json.RawMessage(`1`))
	se := statusErr(t, "busy", err, 503, CodeBusy)
	if se.RetryAfter != time.Second || !se.Temporary() || !strings.Contains(se.Error(), "503 busy") {
		t.Fatalf("busy error: %+v (%v)", se, se)
	}
	if got := retryAfter(time.Now().Add(-time.Hour).UTC().Format(http.TimeFormat)); got != 0 {
		t.Fatalf("a past date: %v", got)
	}
	if got := retryAfter(time.Now().Add(time.Hour).UTC().Format(http.TimeFormat)); got < 58*time.Minute {
		t.Fatalf("a date in an hour: %v", got)
	}
}

// Over https the client trusts the CA file it is given and no other.
func TestClientTLS(t *testing.T) {
	_, fc, s := testServer(t)
	s.SetCore(fc)
	hs := httptest.NewTLSServer(s.Handler())
	t.Cleanup(hs.Close)
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: hs.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	c := newClient(t, ClientOptions{URL: hs.URL + "/", CACertFile: ca, Token: tokOperator})
	if st, err := c.Status(ctx); err != nil || st.JournalSize != 3 {
		t.Fatalf("status over TLS: %+v, %v", st, err)
	}
	untrusted := newClient(t, ClientOptions{URL: hs.URL, Token: tokOperator})
	var se *StatusError
	if _, err := untrusted.Status(ctx); err == nil || errors.As(err, &se) {
		t.Fatalf("a server of an unknown CA was trusted: %v", err)
	}
}

func TestClientOptions(t *testing.T) {
	ca := filepath.Join(t.TempDir(), "ca.pem")
	os.WriteFile(ca, []byte("not pem"), 0o600)
	for _, o := range []ClientOptions{
		{},
		{Socket: "/s", CACertFile: ca},
		{URL: "http://127.0.0.1:8443"},
		{URL: "https://"},
		{URL: "https://127.0.0.1:8443", CACertFile: ca},
		{URL: "https://127.0.0.1:8443", CACertFile: ca + ".missing"},
	} {
		var oe *OptionsError
		if _, err := NewClient(o); !errors.As(err, &oe) {
			t.Errorf("%+v: %v, want an *OptionsError", o, err)
		}
	}
}

// A token comes from its file (not world-readable, one word) or from
// $EDGESEAL_TOKEN.
func TestClientToken(t *testing.T) {
	dir := t.TempDir()
	env := func(k string) string {
		if k == TokenEnv {
			return "from-env"
		}
		return ""
	}
	if tok, err := ClientToken("", env); err != nil || tok != "from-env" {
		t.Fatalf("env: %q, %v", tok, err)
	}
	good := filepath.Join(dir, "good")
	os.WriteFile(good, []byte("  tok123\n"), 0o600)
	if tok, err := ClientToken(good, env); err != nil || tok != "tok123" {
		t.Fatalf("file: %q, %v", tok, err)
	}
	for name, c := range map[string]struct {
		body string
		mode os.FileMode
		want string
	}{
		"world": {"tok", 0o644, "readable by every user"},
		"empty": {"\n", 0o600, "is empty"},
		"two":   {"a b", 0o600, "more than one line"},
		"big":   {strings.Repeat("x", MaxTokenFile+1), 0o600, "over"},
	} {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(c.body), 0o600)
		os.Chmod(p, c.mode)
		if _, err := ReadTokenFile(p); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", name, err, c.want)
		}
	}
	if _, err := ReadTokenFile(dir); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("a directory: %v", err)
	}
}
