package api

import (
	"encoding/json"
	"errors"
	"mime"
	"net/http"
	"strings"
	"testing"
	"unicode/utf8"
)

func FuzzDecodeExport(f *testing.F) {
	for _, s := range []string{
		`{"workflow":"w","app":"a","data":{"x":1}}`,
		`{"id":"e-1","workflow":"w","app":"a","purpose":"p","schema":"s@1","classification":"c","retention":"r","destination":"d","media_type":"application/vnd.x+json","data":[1,2,{"a":null}]}`,
		`{"workflow":"w","workflow":"v","data":1}`,
		`{"data":1} {}`, `[]`, `{"data":`, `{"x":1,"data":2}`, `{"workflow":5,"data":1}`, ``, `null`,
		`{"data":"\ud800"}`, `{"media_type":"text/csv","data":1}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		req, err := DecodeExport(b)
		if err != nil {
			var ae *Error
			if !errors.As(err, &ae) || ae.Status != http.StatusBadRequest || ae.Code == "" {
				t.Fatalf("error %v is not a 400 *Error", err)
			}
			if !utf8.ValidString(ae.Msg) || !utf8.ValidString(ae.Field) {
				t.Fatalf("error text not UTF-8: %q %q", ae.Msg, ae.Field)
			}
			return
		}
		if !json.Valid(req.Data) {
			t.Fatalf("accepted data that is not JSON: %q", req.Data)
		}
		base, _, err := mime.ParseMediaType(req.MediaType)
		if err != nil || !(base == "application/json" || strings.HasSuffix(base, "+json")) {
			t.Fatalf("accepted media type %q", req.MediaType)
		}
		// The envelope decodes the same way with encoding/json.
		var m map[string]json.RawMessage
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatalf("accepted %q which encoding/json refuses: %v", b, err)
		}
		if _, ok := m["data"]; !ok {
			t.Fatal("accepted without data")
		}
		var wf string
		if raw, ok := m["workflow"]; ok {
			if err := json.Unmarshal(raw, &wf); err != nil || wf != req.Workflow {
				t.Fatalf("workflow %q, encoding/json says %q (%v)", req.Workflow, wf, err)
			}
		}
	})
}

// A batch line is decoded by DecodeExport; this fuzzes it through the
// line splitter with several lines.
func FuzzBatchLines(f *testing.F) {
	f.Add([]byte("{\"workflow\":\"w\",\"app\":\"a\",\"data\":1}\n\n{bad\n{\"data\":[]}\r\n"))
	f.Add([]byte("\n\n"))
	f.Add([]byte(strings.Repeat("{\"data\":1}\n", 5)))
	f.Fuzz(func(t *testing.T, b []byte) {
		s := New(Options{MaxBody: 1 << 16, MaxBatchLines: 4})
		lines, err := s.readBatch(strings.NewReader(string(b)))
		if err != nil {
			var ae *Error
			if !errors.As(err, &ae) || (ae.Status != 400 && ae.Status != 413) {
				t.Fatalf("batch error %v", err)
			}
			return
		}
		if len(lines) == 0 || len(lines) > 4 {
			t.Fatalf("%d lines", len(lines))
		}
		for i, l := range lines {
			if l.Err == nil && !json.Valid(l.Req.Data) {
				t.Fatalf("line %d accepted with data %q", i, l.Req.Data)
			}
			if l.Err != nil && len(l.Req.Data) == 0 {
				t.Fatalf("line %d refused without its bytes for the digest", i)
			}
		}
	})
}

func FuzzDecodeHeaders(f *testing.F) {
	f.Add("w", "a", "text/csv; charset=utf-8", "id-1", "")
	f.Add("", "", "", "", "x")
	f.Add("w", "a", "*/*", "", "")
	f.Add("w\x00", "ä", "application/pdf", "a,b", "second")
	f.Fuzz(func(t *testing.T, wf, app, ct, id, dup string) {
		h := http.Header{}
		h.Set(HeaderWorkflow, wf)
		h.Set(HeaderApp, app)
		h.Set(HeaderID, id)
		if ct != "" {
			h.Set("Content-Type", ct)
		}
		if dup != "" {
			h.Add(HeaderApp, dup)
		}
		req, err := DecodeHeaders(h)
		if err != nil {
			var ae *Error
			if !errors.As(err, &ae) || (ae.Status != 400 && ae.Status != 415) {
				t.Fatalf("error %v", err)
			}
			return
		}
		if dup != "" {
			t.Fatal("a repeated header was accepted")
		}
		if req.Workflow != strings.TrimSpace(wf) || req.App != strings.TrimSpace(app) {
			t.Fatalf("fields %q %q from %q %q", req.Workflow, req.App, wf, app)
		}
		// A media type, never a wildcard one ("text/*"); a parameter value
		// may be any token, "*" included.
		if base, _, err := mime.ParseMediaType(req.MediaType); err != nil || strings.Contains(base, "*") {
			t.Fatalf("media type %q accepted from %q", req.MediaType, ct)
		}
	})
}
