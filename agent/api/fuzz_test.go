package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"mime"
	"net/http"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/edgeseal/edgeseal/agent"
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

// The streamed batch decoder: lines are split at '\n' and trimmed, blank
// ones skipped, each decoded by DecodeExport, and handed over in order in
// sub-batches within the chunk bound (a longer line alone), numbered
// without a gap; a refused line keeps its bytes for the digest.
func FuzzBatchLines(f *testing.F) {
	f.Add([]byte("{\"workflow\":\"w\",\"app\":\"a\",\"data\":1}\n\n{bad\n{\"data\":[]}\r\n"), uint8(40))
	f.Add([]byte("\n\n"), uint8(1))
	f.Add([]byte(strings.Repeat("{\"data\":1}\n", 5)), uint8(12))
	f.Add([]byte(strings.Repeat("x", 200)+"\n"+strings.Repeat("{\"data\":\"y\"}", 3)), uint8(5))
	f.Fuzz(func(t *testing.T, b []byte, chunk uint8) {
		s := New(Options{MaxBody: 1 << 16, MaxBatchLines: 4, BatchChunk: int(chunk) + 1})
		var want [][]byte
		for _, l := range bytes.Split(b, []byte("\n")) {
			if l = bytes.TrimSpace(l); len(l) > 0 {
				want = append(want, l)
			}
		}
		var got []agent.BatchLine
		err := s.streamBatch(strings.NewReader(string(b)), func(first int, lines []agent.BatchLine) error {
			if first != len(got)+1 || len(lines) == 0 {
				t.Fatalf("sub-batch from line %d after %d lines (%d lines)", first, len(got), len(lines))
			}
			held := 0
			for k := range lines {
				held += len(want[len(got)+k])
			}
			if len(lines) > 1 && held > s.opts.BatchChunk {
				t.Fatalf("sub-batch of %d lines holds %d bytes, chunk %d", len(lines), held, s.opts.BatchChunk)
			}
			got = append(got, lines...)
			return nil
		})
		if err != nil {
			var ae *Error
			if !errors.As(err, &ae) || (ae.Status != 400 && ae.Status != 413) {
				t.Fatalf("batch error %v", err)
			}
			if ae.Status == 413 && len(want) <= 4 {
				t.Fatalf("413 for %d lines", len(want))
			}
			if ae.Status == 400 && len(want) > 0 {
				t.Fatalf("400 for %d lines: %v", len(want), err)
			}
			return
		}
		if len(got) != len(want) || len(got) > 4 {
			t.Fatalf("%d lines, want %d", len(got), len(want))
		}
		for i, l := range got {
			ref, rerr := DecodeExport(want[i])
			if (rerr == nil) != (l.Err == nil) || (rerr == nil && !bytes.Equal(ref.Data, l.Req.Data)) {
				t.Fatalf("line %d: %v %q, want %v %q", i, l.Err, l.Req.Data, rerr, ref.Data)
			}
			if l.Err == nil && !json.Valid(l.Req.Data) {
				t.Fatalf("line %d accepted with data %q", i, l.Req.Data)
			}
			if l.Err != nil && !bytes.Equal(l.Req.Data, want[i]) {
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
