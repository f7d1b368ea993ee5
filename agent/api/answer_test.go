package api

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"testing/iotest"

	"github.com/edgeseal/edgeseal/agent"
)

// TestAnswersAsEncodingJSON: the hand-written answers of accepted exports
// are byte for byte what json.Encoder (HTML escaping off) writes, for
// receipts, duplicates, errors and strings that need escaping (which take
// encoding/json's path).
func TestAnswersAsEncodingJSON(t *testing.T) {
	rcs := []agent.ExportReceipt{
		{ExportID: "0123456789abcdef0123456789abcdef", Seq: 7, Leaf: "sha256:" + string(bytes.Repeat([]byte("ab"), 32)), Size: 8, Digest: "sha256:00"},
		{ExportID: "inv-2026.01:x_y", Seq: 1 << 53, Size: 1<<53 + 1, Digest: "d", Duplicate: true},
		{},
		{ExportID: `a"b\c`, Leaf: "<&>", Digest: "é\u2028\x01"},
		{ExportID: "x\x7f"},
	}
	for _, rc := range rcs {
		want := encoded(t, rc)
		got, ok := appendReceipt(nil, &rc)
		if ok && string(got)+"\n" != want {
			t.Errorf("appendReceipt(%+v) = %s, want %s", rc, got, want)
		}
		if plain := plainJSON(rc.ExportID) && plainJSON(rc.Leaf) && plainJSON(rc.Digest); ok != plain {
			t.Errorf("appendReceipt(%+v): ok %v, want %v", rc, ok, plain)
		}
		rec := httptest.NewRecorder()
		writeReceipt(rec, http.StatusCreated, &rc)
		if rec.Code != http.StatusCreated || rec.Body.String() != want || rec.Header().Get("Content-Type") != "application/json" || rec.Header().Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("writeReceipt(%+v): %d %v %q, want 201 with %s", rc, rec.Code, rec.Header(), rec.Body, want)
		}
		for _, a := range []BatchAnswer{
			{Line: 3, Status: http.StatusCreated, Receipt: &rc},
			{Line: 10000, Status: http.StatusOK, Receipt: &rc},
			{Line: 1, Status: http.StatusBadRequest, Error: &ErrorInfo{Code: CodeBadField, Field: "id", Message: `bad "<id>"`}},
		} {
			prefix := []byte("previous line\n")
			got := appendBatchAnswer(bytes.Clone(prefix), &a)
			if want := string(prefix) + encoded(t, a); string(got) != want {
				t.Errorf("appendBatchAnswer(%+v) = %s, want %s", a, got, want)
			}
		}
	}
}

func encoded(t *testing.T, v any) string {
	t.Helper()
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// TestReadBodySized: a body is read whole whatever its announced length
// says (net/http holds a body to its Content-Length; a reader here may
// not), and over the limit is 413.
func TestReadBodySized(t *testing.T) {
	body := bytes.Repeat([]byte("0123456789"), 100)
	for _, size := range []int64{-1, 0, 1, 999, 1000, 1001, 4096} {
		rec := httptest.NewRecorder()
		got, err := readBody(http.MaxBytesReader(rec, io.NopCloser(iotest.HalfReader(bytes.NewReader(body))), 1000), size, 1000)
		if err != nil || !bytes.Equal(got, body) {
			t.Errorf("size %d: %d bytes, %v; want the %d bytes", size, len(got), err, len(body))
		}
		_, err = readBody(http.MaxBytesReader(rec, io.NopCloser(bytes.NewReader(body)), 999), size, 999)
		if e, ok := err.(*Error); !ok || e.Status != http.StatusRequestEntityTooLarge {
			t.Errorf("size %d over the limit: %v, want a 413 *Error", size, err)
		}
	}
}
