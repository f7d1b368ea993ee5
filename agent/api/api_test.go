package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/edgeseal/edgeseal/agent"
	"github.com/edgeseal/edgeseal/agent/config"
	"github.com/edgeseal/edgeseal/agent/policy"
	"github.com/edgeseal/edgeseal/bundle/custody"
	"github.com/edgeseal/edgeseal/store"
)

// fakeCore answers like the core: exporters only, workflow "w" only; it
// counts rejections.
type fakeCore struct {
	mu       sync.Mutex
	rejected []string
	fail     error // returned by Ingest when set
	seen     map[string]bool
}

func (f *fakeCore) Ingest(ctx context.Context, p *config.Principal, via string, req agent.IngestRequest) (agent.ExportReceipt, error) {
	res, err := f.IngestBatch(ctx, p, via, []agent.BatchLine{{Req: req}})
	if err != nil {
		return agent.ExportReceipt{}, err
	}
	return res[0].Receipt, res[0].Err
}

func (f *fakeCore) IngestBatch(_ context.Context, p *config.Principal, _ string, lines []agent.BatchLine) ([]agent.BatchResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail != nil {
		return nil, f.fail
	}
	if f.seen == nil {
		f.seen = map[string]bool{}
	}
	out := make([]agent.BatchResult, len(lines))
	for i, l := range lines {
		var cause error
		switch {
		case l.Err != nil:
			cause = l.Err
		case !p.Has(config.RoleExporter):
			cause = &agent.ForbiddenError{Principal: p.Name, Role: config.RoleExporter}
		case l.Req.Workflow != "w":
			cause = &policy.Violation{Field: "workflow", Rule: policy.RuleUnknownWorkflow, Message: "no such workflow"}
		}
		if cause != nil {
			f.rejected = append(f.rejected, cause.Error())
			out[i].Err = &agent.RejectedError{ExportID: "r", Seq: uint64(len(f.rejected)), Err: cause}
			continue
		}
		out[i].Receipt = agent.ExportReceipt{ExportID: l.Req.ID, Seq: 7, Duplicate: f.seen[l.Req.ID]}
		f.seen[l.Req.ID] = true
	}
	return out, nil
}

func (f *fakeCore) Reject(_ context.Context, _ custody.Actor, _ agent.IngestRequest, cause error) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rejected = append(f.rejected, cause.Error())
	return &agent.RejectedError{ExportID: "r", Seq: uint64(len(f.rejected)), Err: cause}
}

func (f *fakeCore) ExportStatus(_ context.Context, _, id string) (*agent.ExportInfo, error) {
	return nil, &agent.NotFoundError{What: "export", ID: id}
}
func (f *fakeCore) Checkpoint() (*agent.CheckpointInfo, error) {
	return &agent.CheckpointInfo{Size: 3}, nil
}
func (f *fakeCore) Status(context.Context) (*agent.Status, error) {
	return &agent.Status{JournalSize: 3}, nil
}
func (f *fakeCore) Seal(context.Context) (*agent.SealResult, error) { return nil, nil }

const (
	tokExporter = "exporter-token"
	tokAuditor  = "auditor-token"
	tokOperator = "operator-token"
)

func testServer(t *testing.T) (*httptest.Server, *fakeCore, *Server) {
	t.Helper()
	s := New(Options{
		MaxBody: 1024, MaxBatchLines: 3,
		Principals: config.Principals{
			{Name: "n8n", TokenSHA256: config.HashToken(tokExporter), Roles: []config.Role{config.RoleExporter}},
			{Name: "audit", TokenSHA256: config.HashToken(tokAuditor), Roles: []config.Role{config.RoleAuditor}},
			{Name: "ops", TokenSHA256: config.HashToken(tokOperator), Roles: []config.Role{config.RoleOperator}},
		},
	})
	fc := &fakeCore{}
	hs := httptest.NewServer(s.Handler())
	t.Cleanup(hs.Close)
	return hs, fc, s
}

type reply struct {
	status int
	header http.Header
	body   string
	err    ErrorInfo
}

func call(t *testing.T, hs *httptest.Server, method, path, token, ctype, body string, hdr ...string) reply {
	t.Helper()
	req, err := http.NewRequest(method, hs.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := hs.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	r := reply{status: resp.StatusCode, header: resp.Header, body: string(b)}
	if resp.StatusCode >= 400 {
		var eb ErrorBody
		if err := json.Unmarshal(b, &eb); err != nil || eb.Error.Code == "" {
			t.Fatalf("%s %s: %d answer is not a JSON error: %q", method, path, resp.StatusCode, b)
		}
		r.err = eb.Error
	}
	return r
}

func TestAPIStatusCodes(t *testing.T) {
	hs, fc, s := testServer(t)
	good := `{"id":"a1","workflow":"w","app":"n8n","data":{"k":1}}`
	// Not ready yet: 503 everywhere but /healthz.
	if r := call(t, hs, "POST", "/v1/exports", tokExporter, "application/json", good); r.status != 503 || r.err.Code != CodeNotReady {
		t.Fatalf("before SetCore: %d %s", r.status, r.body)
	}
	if r := call(t, hs, "GET", "/readyz", "", "", ""); r.status != 503 {
		t.Fatalf("readyz before SetCore: %d", r.status)
	}
	if r := call(t, hs, "GET", "/healthz", "", "", ""); r.status != 200 {
		t.Fatalf("healthz: %d", r.status)
	}
	s.SetCore(fc)
	if r := call(t, hs, "GET", "/readyz", "", "", ""); r.status != 200 {
		t.Fatalf("readyz: %d", r.status)
	}

	cases := []struct {
		name, method, path, token, ctype, body string
		hdr                                    []string
		status                                 int
		code, field                            string
		journaled                              bool
	}{
		{"good json", "POST", "/v1/exports", tokExporter, "application/json", good, nil, 201, "", "", false},
		{"repeat", "POST", "/v1/exports", tokExporter, "application/json", good, nil, 200, "", "", false},
		{"raw csv", "POST", "/v1/exports", tokExporter, "text/csv", "a,b\n1,2\n", []string{HeaderWorkflow, "w", HeaderApp, "x", HeaderID, "c1"}, 201, "", "", false},
		{"no token", "POST", "/v1/exports", "", "application/json", good, nil, 401, CodeUnauthorized, "", true},
		{"bad token", "POST", "/v1/exports", "nope", "application/json", good, nil, 401, CodeUnauthorized, "", true},
		{"auditor posts", "POST", "/v1/exports", tokAuditor, "application/json", good, nil, 403, CodeForbidden, "", true},
		{"unknown workflow", "POST", "/v1/exports", tokExporter, "application/json", `{"workflow":"x","app":"a","data":1}`, nil, 422, "unknown_workflow", "workflow", true},
		{"malformed", "POST", "/v1/exports", tokExporter, "application/json", `{"workflow":`, nil, 400, CodeMalformedJSON, "", true},
		{"wrong type", "POST", "/v1/exports", tokExporter, "application/json", `{"workflow":1,"data":1}`, nil, 400, CodeBadField, "workflow", true},
		{"no data", "POST", "/v1/exports", tokExporter, "application/json", `{"workflow":"w"}`, nil, 400, CodeBadField, "data", true},
		{"text without headers", "POST", "/v1/exports", tokExporter, "text/plain", "hello", nil, 415, CodeUnsupportedMedia, "", true},
		{"raw without type", "POST", "/v1/exports", tokExporter, "", "hello", []string{HeaderWorkflow, "w"}, 415, CodeUnsupportedMedia, "", true},
		{"too large", "POST", "/v1/exports", tokExporter, "application/json", `{"workflow":"w","data":"` + strings.Repeat("x", 2000) + `"}`, nil, 413, CodeBodyTooLarge, "", true},
		{"batch wrong type", "POST", "/v1/exports:batch", tokExporter, "application/json", good, nil, 415, CodeUnsupportedMedia, "", true},
		{"batch too many", "POST", "/v1/exports:batch", tokExporter, NDJSONType, strings.Repeat(`{"data":1}`+"\n", 4), nil, 413, CodeTooManyLines, "", true},
		{"get unknown", "GET", "/v1/exports/zz", tokAuditor, "", "", nil, 404, CodeNotFound, "", false},
		{"status as exporter", "GET", "/v1/status", tokExporter, "", "", nil, 403, CodeForbidden, "", false},
		{"status as operator", "GET", "/v1/status", tokOperator, "", "", nil, 200, "", "", false},
		{"seal as auditor", "POST", "/v1/seal", tokAuditor, "", "", nil, 403, CodeForbidden, "", false},
		{"seal as operator", "POST", "/v1/seal", tokOperator, "", "", nil, 200, "", "", false},
		{"checkpoint no token", "GET", "/v1/checkpoint", "", "", "", nil, 401, CodeUnauthorized, "", false},
		{"checkpoint", "GET", "/v1/checkpoint", tokExporter, "", "", nil, 200, "", "", false},
		{"method", "DELETE", "/v1/exports", tokExporter, "", "", nil, 405, CodeMethodNotAllowed, "", false},
		{"no route", "GET", "/v2/nothing", tokExporter, "", "", nil, 404, CodeNotFound, "", false},
	}
	for _, c := range cases {
		before := len(fc.rejected)
		r := call(t, hs, c.method, c.path, c.token, c.ctype, c.body, c.hdr...)
		if r.status != c.status || r.err.Code != c.code || r.err.Field != c.field {
			t.Errorf("%s: %d %q %q, want %d %q %q: %s", c.name, r.status, r.err.Code, r.err.Field, c.status, c.code, c.field, r.body)
			continue
		}
		if got := len(fc.rejected) > before; got != c.journaled {
			t.Errorf("%s: journaled %v, want %v", c.name, got, c.journaled)
		}
		if c.journaled && (r.err.Seq == nil || r.err.ExportID == "") {
			t.Errorf("%s: the answer does not name the rejection record: %s", c.name, r.body)
		}
		if c.status == 401 && !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Bearer") {
			t.Errorf("%s: no WWW-Authenticate: Bearer", c.name)
		}
	}
}

func TestAPIBatchAnswersPerLine(t *testing.T) {
	hs, fc, s := testServer(t)
	s.SetCore(fc)
	body := `{"id":"b1","workflow":"w","app":"a","data":1}` + "\n\n" + `{"workflow":"zz","app":"a","data":1}` + "\n" + `{oops` + "\n"
	r := call(t, hs, "POST", "/v1/exports:batch", tokExporter, NDJSONType, body)
	if r.status != 200 || !strings.HasPrefix(r.header.Get("Content-Type"), NDJSONType) {
		t.Fatalf("%d %s", r.status, r.body)
	}
	var got []BatchAnswer
	dec := json.NewDecoder(strings.NewReader(r.body))
	for dec.More() {
		var a BatchAnswer
		if err := dec.Decode(&a); err != nil {
			t.Fatal(err)
		}
		got = append(got, a)
	}
	if len(got) != 3 || got[0].Status != 201 || got[0].Receipt == nil ||
		got[1].Status != 422 || got[1].Error.Code != "unknown_workflow" ||
		got[2].Status != 400 || got[2].Error.Code != CodeMalformedJSON || got[2].Line != 3 {
		t.Fatalf("answers %+v", got)
	}
}

// Status codes are decided by error type through any wrapping; a 500
// does not leak its cause.
func TestClassify(t *testing.T) {
	cases := []struct {
		err        error
		status     int
		code       string
		retryAfter bool
	}{
		{fmt.Errorf("x: %w", &store.BusyError{Pending: 9, Limit: 8}), 503, CodeBusy, true},
		{fmt.Errorf("x: %w", &store.SpaceError{Free: 1, MinFree: 2}), 503, CodeDiskNearlyFull, true},
		{fmt.Errorf("write: %w", fmt.Errorf("badger: %w", syscall.ENOSPC)), 507, CodeNoSpace, false},
		{fmt.Errorf("x: %w", store.ErrClosed), 503, CodeUnavailable, true},
		{&agent.RejectedError{Err: &policy.Violation{Field: "data", Rule: policy.RuleSchemaViolation}}, 422, "schema_violation", false},
		{errors.New("secret path /var/lib/x"), 500, CodeInternal, false},
	}
	for _, c := range cases {
		a := classify(c.err)
		if a.status != c.status || a.info.Code != c.code || (a.retryAfter > 0) != c.retryAfter {
			t.Errorf("%v: %d %s retry %d", c.err, a.status, a.info.Code, a.retryAfter)
		}
		if a.status == 500 && strings.Contains(a.info.Message, "secret") {
			t.Errorf("500 leaks its cause: %q", a.info.Message)
		}
	}
}

// slowCore holds each batch a while and records how many run at once.
type slowCore struct {
	*fakeCore
	inflight, peak atomic.Int64
}

func (c *slowCore) IngestBatch(ctx context.Context, p *config.Principal, via string, lines []agent.BatchLine) ([]agent.BatchResult, error) {
	n := c.inflight.Add(1)
	defer c.inflight.Add(-1)
	for {
		old := c.peak.Load()
		if n <= old || c.peak.CompareAndSwap(old, n) {
			break
		}
	}
	time.Sleep(50 * time.Millisecond)
	return c.fakeCore.IngestBatch(ctx, p, via, lines)
}

// At most MaxBatches batch requests are read and ingested at once; the
// others wait their turn and are answered too.
func TestAPIBatchesTakeTurns(t *testing.T) {
	s := New(Options{MaxBatches: 1, Principals: config.Principals{
		{Name: "n8n", TokenSHA256: config.HashToken(tokExporter), Roles: []config.Role{config.RoleExporter}},
	}})
	hs := httptest.NewServer(s.Handler())
	t.Cleanup(hs.Close)
	sc := &slowCore{fakeCore: &fakeCore{}}
	s.SetCore(sc)
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Go(func() {
			r := call(t, hs, "POST", "/v1/exports:batch", tokExporter, NDJSONType, fmt.Sprintf(`{"id":"t%d","workflow":"w","app":"a","data":1}`+"\n", i))
			if r.status != 200 {
				t.Errorf("batch %d: %d %s", i, r.status, r.body)
			}
		})
	}
	wg.Wait()
	if p := sc.peak.Load(); p != 1 {
		t.Fatalf("%d batches ingested at once, want 1", p)
	}
}
