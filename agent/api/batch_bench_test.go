package api

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"

	"github.com/edgeseal/edgeseal/agent"
	"github.com/edgeseal/edgeseal/agent/config"
)

// batchLine is one NDJSON export of about 1 KiB for the example policy's
// sensor-batches workflow (n8n-prod may send it).
func batchLine(n int) []byte {
	head := fmt.Sprintf(`{"id":"l%d","workflow":"sensor-batches","app":"bench","classification":"internal","destination":"archive","data":{"line":"`, n)
	return fmt.Appendf(nil, `%s%s","readings":[{"at":"2026-03-01T10:00:00Z","sensor":"t1","value":%d}]}}`+"\n",
		head, strings.Repeat("x", 1024-len(head)-70), n)
}

// batchBody is a batch of lines lines numbered from first.
func batchBody(first, lines int) []byte {
	var b bytes.Buffer
	for i := range lines {
		b.Write(batchLine(first + i))
	}
	return b.Bytes()
}

const tokN8n = "n8n-prod-token"

// BenchmarkBatchHandler: POST /v1/exports:batch of 1000 lines through the
// handler (no socket) into a real core over a real encrypted journal. One
// op is one record. It reports records/s, bytes allocated a record and
// the highest heap in use seen after a request.
func BenchmarkBatchHandler(b *testing.B) {
	core, _ := realCore(b)
	s := New(Options{Principals: config.Principals{
		{Name: "n8n-prod", TokenSHA256: config.HashToken(tokN8n), Roles: []config.Role{config.RoleExporter}},
	}})
	s.SetCore(core)
	h := s.Handler()
	const lines = 1000
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	alloc0 := ms.TotalAlloc
	var peak uint64
	b.ResetTimer()
	for n := 0; n < b.N; n += lines {
		b.StopTimer()
		body := batchBody(n, min(lines, b.N-n))
		b.StartTimer()
		req := httptest.NewRequest("POST", "/v1/exports:batch", bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+tokN8n)
		req.Header.Set("Content-Type", NDJSONType)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != http.StatusOK || !bytes.Contains(w.Body.Bytes(), []byte(`"status":201`)) {
			b.Fatalf("%d %.300s", w.Code, w.Body.String())
		}
		b.StopTimer()
		runtime.ReadMemStats(&ms)
		peak = max(peak, ms.HeapInuse)
		b.StartTimer()
	}
	b.StopTimer()
	runtime.ReadMemStats(&ms)
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
	b.ReportMetric(float64(ms.TotalAlloc-alloc0)/float64(b.N), "B/record")
	b.ReportMetric(float64(peak)/(1<<20), "heap-MiB")
}

// BenchmarkBatchDecode: the API's own part of a batch of 1000 lines (the
// body read, decoded and answered) over a core that journals nothing.
func BenchmarkBatchDecode(b *testing.B) {
	s := New(Options{Principals: config.Principals{
		{Name: "n8n-prod", TokenSHA256: config.HashToken(tokN8n), Roles: []config.Role{config.RoleExporter}},
	}})
	s.SetCore(&nullCore{fakeCore: &fakeCore{}})
	h := s.Handler()
	body := batchBody(0, 1000)
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	alloc0 := ms.TotalAlloc
	b.ResetTimer()
	for n := 0; n < b.N; n += 1000 {
		req := httptest.NewRequest("POST", "/v1/exports:batch", bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+tokN8n)
		req.Header.Set("Content-Type", NDJSONType)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != http.StatusOK {
			b.Fatalf("%d %.300s", w.Code, w.Body.String())
		}
	}
	b.StopTimer()
	runtime.ReadMemStats(&ms)
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
	b.ReportMetric(float64(ms.TotalAlloc-alloc0)/float64(b.N), "B/record")
}

// nullCore answers every line 201 without journaling it.
type nullCore struct{ *fakeCore }

func (*nullCore) IngestBatch(_ context.Context, _ *config.Principal, _ string, lines []agent.BatchLine) ([]agent.BatchResult, error) {
	out := make([]agent.BatchResult, len(lines))
	for i, l := range lines {
		out[i].Receipt = agent.ExportReceipt{ExportID: l.Req.ID, Seq: uint64(i), Leaf: "sha256:0", Size: uint64(i + 1), Digest: "sha256:0"}
	}
	return out, nil
}
