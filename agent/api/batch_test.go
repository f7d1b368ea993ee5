package api

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgeseal/edgeseal/agent"
	"github.com/edgeseal/edgeseal/agent/config"
	"github.com/edgeseal/edgeseal/bundle/custody"
)

// chunkCore records the sub-batches it is handed (their line counts) and
// the live heap at each, and signals each refusal of a whole request.
type chunkCore struct {
	*fakeCore
	mu       sync.Mutex
	chunks   []int
	peakHeap uint64
	measure  bool
	rejects  chan struct{}
}

func (c *chunkCore) IngestBatch(ctx context.Context, p *config.Principal, via string, lines []agent.BatchLine) ([]agent.BatchResult, error) {
	c.mu.Lock()
	c.chunks = append(c.chunks, len(lines))
	if c.measure {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		c.peakHeap = max(c.peakHeap, ms.HeapAlloc)
	}
	c.mu.Unlock()
	return c.fakeCore.IngestBatch(ctx, p, via, lines)
}

func (c *chunkCore) Reject(ctx context.Context, a custody.Actor, req agent.IngestRequest, cause error) error {
	err := c.fakeCore.Reject(ctx, a, req, cause)
	if c.rejects != nil {
		c.rejects <- struct{}{}
	}
	return err
}

func batchServer(t *testing.T, o Options, c Core) *Server {
	t.Helper()
	o.Principals = config.Principals{
		{Name: "n8n", TokenSHA256: config.HashToken(tokExporter), Roles: []config.Role{config.RoleExporter}},
		{Name: "n8n-prod", TokenSHA256: config.HashToken(tokN8n), Roles: []config.Role{config.RoleExporter}},
	}
	s := New(o)
	s.SetCore(c)
	return s
}

// genLines is a reader of n lines of about 1 KiB, made as it is read.
type genLines struct {
	n, i int
	buf  []byte
}

func (g *genLines) Read(p []byte) (int, error) {
	for len(g.buf) == 0 {
		if g.i == g.n {
			return 0, io.EOF
		}
		g.buf = fmt.Appendf(g.buf[:0], `{"id":"g%d","workflow":"w","app":"a","data":"%s"}`+"\n", g.i, strings.Repeat("d", 1000))
		g.i++
	}
	n := copy(p, g.buf)
	g.buf = g.buf[n:]
	return n, nil
}

func answersOf(t *testing.T, body []byte) []BatchAnswer {
	t.Helper()
	var got []BatchAnswer
	dec := json.NewDecoder(bytes.NewReader(body))
	for dec.More() {
		var a BatchAnswer
		if err := dec.Decode(&a); err != nil {
			t.Fatal(err)
		}
		got = append(got, a)
	}
	return got
}

func postBatchTo(h http.Handler, token string, body io.Reader) *httptest.ResponseRecorder {
	req := httptest.NewRequest("POST", "/v1/exports:batch", body)
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", NDJSONType)
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	return w
}

// A batch far larger than the chunk is decoded as it arrives: the live
// heap stays within a bound set by the chunk, not by the body (48 MiB
// here), and every line is answered, in order.
func TestBatchHugeStaysBounded(t *testing.T) {
	const lines = 48 << 10 // of about 1 KiB
	cc := &chunkCore{fakeCore: &fakeCore{}, measure: true}
	s := batchServer(t, Options{MaxBody: 64 << 20, MaxBatchLines: lines, BatchChunk: 1 << 20}, cc)
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base := ms.HeapAlloc
	w := postBatchTo(s.Handler(), tokExporter, &genLines{n: lines})
	if w.Code != 200 {
		t.Fatalf("%d %.300s", w.Code, w.Body.String())
	}
	got := answersOf(t, w.Body.Bytes())
	if len(got) != lines || got[0].Line != 1 || got[lines-1].Line != lines || got[lines-1].Status != 201 {
		t.Fatalf("%d answers, last %+v", len(got), got[len(got)-1])
	}
	if len(cc.chunks) < 40 {
		t.Fatalf("%d sub-batches for 48 MiB in 1 MiB chunks", len(cc.chunks))
	}
	// The chunk (1 MiB of lines, their copies and the core's results)
	// and the answers so far (about 100 bytes a line here): generous.
	if grew := int64(cc.peakHeap) - int64(base); grew > 24<<20 {
		t.Fatalf("live heap grew %d MiB for a 48 MiB batch in 1 MiB chunks", grew>>20)
	}
}

// A malformed line in the middle, where a sub-batch ends, is answered 400
// malformed_json at its place; the lines around it are journaled and
// answered as usual, and the core saw it as a refused line.
func TestBatchMalformedLineMidStream(t *testing.T) {
	cc := &chunkCore{fakeCore: &fakeCore{}}
	s := batchServer(t, Options{BatchChunk: 100}, cc)
	line := func(i int) string { return fmt.Sprintf(`{"id":"m%d","workflow":"w","app":"a","data":%d}`, i, i) }
	body := line(1) + "\n" + line(2) + "\n\n" + `{"id":"m3","workflow":` + "\n" + line(4) + "\n" + line(5) + "\n"
	w := postBatchTo(s.Handler(), tokExporter, strings.NewReader(body))
	if w.Code != 200 {
		t.Fatalf("%d %s", w.Code, w.Body.String())
	}
	got := answersOf(t, w.Body.Bytes())
	if len(got) != 5 {
		t.Fatalf("%d answers: %s", len(got), w.Body.String())
	}
	for i, a := range got {
		want := 201
		if i == 2 {
			want = 400
		}
		if a.Line != i+1 || a.Status != want || (want == 400 && (a.Error == nil || a.Error.Code != CodeMalformedJSON)) {
			t.Fatalf("answer %d: %+v", i, a)
		}
	}
	if len(cc.chunks) < 2 {
		t.Fatalf("sub-batches %v: the test needs the batch split", cc.chunks)
	}
	if len(cc.rejected) != 1 {
		t.Fatalf("refusals %v, want the malformed line's", cc.rejected)
	}
}

// A client that leaves mid-body: the sub-batches completed before were
// journaled (they were whole), the one being read is not; the request is
// refused as a whole (one refusal) and nothing of the broken sub-batch
// reaches the core.
func TestBatchClientLeavesMidStream(t *testing.T) {
	cc := &chunkCore{fakeCore: &fakeCore{}, rejects: make(chan struct{}, 4)}
	s := batchServer(t, Options{BatchChunk: 4 << 10}, cc)
	hs := httptest.NewServer(s.Handler())
	t.Cleanup(hs.Close)
	conn, err := net.Dial("tcp", hs.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	bw := bufio.NewWriter(conn)
	fmt.Fprintf(bw, "POST /v1/exports:batch HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Type: %s\r\nContent-Length: 1000000\r\n\r\n", tokExporter, NDJSONType)
	g := &genLines{n: 6} // 6 KiB: one 4 KiB sub-batch complete, the rest not
	if _, err := io.Copy(bw, g); err != nil {
		t.Fatal(err)
	}
	bw.WriteString(`{"id":"half","workflow":"w"`) // and a line cut off
	if err := bw.Flush(); err != nil {
		t.Fatal(err)
	}
	conn.Close()
	select {
	case <-cc.rejects:
	case <-time.After(10 * time.Second):
		t.Fatal("the broken request was not refused")
	}
	cc.mu.Lock()
	defer cc.mu.Unlock()
	total := 0
	for _, n := range cc.chunks {
		total += n
	}
	if len(cc.chunks) != 1 || total != 3 {
		t.Fatalf("sub-batches %v reached the core, want the one complete 4 KiB sub-batch of 3 lines", cc.chunks)
	}
	if len(cc.rejected) != 1 || !strings.Contains(cc.rejected[0], "reading the body") {
		t.Fatalf("refusals %v", cc.rejected)
	}
}

// With the real core, the answers of a batch do not depend on where it
// is split: ids repeated across sub-batches answer as within one.
func TestBatchOutcomesIndependentOfChunking(t *testing.T) {
	var lines []string
	for i := range 6 {
		lines = append(lines, strings.TrimSuffix(string(batchLine(i)), "\n"))
	}
	lines = append(lines, lines[1]) // the same export again: 200, the original receipt
	conflict := strings.Replace(lines[2], `"value":2`, `"value":99`, 1)
	lines = append(lines, conflict, "not json", conflict)
	body := strings.Join(lines, "\n") + "\n"
	core, _ := realCore(t) // one simulator a process: the runs use their own ids
	run := func(chunk int, prefix string) []BatchAnswer {
		s := batchServer(t, Options{BatchChunk: chunk}, core)
		w := postBatchTo(s.Handler(), tokN8n, strings.NewReader(strings.ReplaceAll(body, `"id":"l`, `"id":"`+prefix)))
		if w.Code != 200 {
			t.Fatalf("chunk %d: %d %s", chunk, w.Code, w.Body.String())
		}
		return answersOf(t, w.Body.Bytes())
	}
	whole, split := run(1<<20, "w"), run(1, "s")
	if len(whole) != len(lines) || len(split) != len(lines) {
		t.Fatalf("%d and %d answers for %d lines", len(whole), len(split), len(lines))
	}
	want := []int{201, 201, 201, 201, 201, 201, 200, 409, 400, 409}
	for i := range lines {
		w, s := whole[i], split[i]
		codes := func(a BatchAnswer) string {
			if a.Error != nil {
				return a.Error.Code
			}
			return ""
		}
		if w.Status != want[i] || s.Status != w.Status || codes(w) != codes(s) || w.Line != s.Line {
			t.Errorf("line %d: whole %d %s, split %d %s, want %d", i+1, w.Status, codes(w), s.Status, codes(s), want[i])
		}
	}
}
