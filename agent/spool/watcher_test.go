package spool

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgeseal/edgeseal/agent/config"
)

var spoolPrincipal = &config.Principal{Name: "spool", Roles: []config.Role{config.RoleExporter}}

// errTransient stands for a journal that cannot take more right now.
var errTransient = errors.New("journal busy")

// fakeIngester journals into a map, deduplicating by id like the core.
type fakeIngester struct {
	mu      sync.Mutex
	byID    map[string]Receipt
	seq     uint64
	failN   int                              // fail this many calls with errTransient
	refuse  func(IngestRequest) *RejectError // refusals by the "policy"
	reqs    []IngestRequest
	rejects []error // causes passed to Reject
	via     []string
}

func newFake() *fakeIngester { return &fakeIngester{byID: map[string]Receipt{}} }

func (f *fakeIngester) Ingest(_ context.Context, p *config.Principal, via string, req IngestRequest) (Receipt, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if p != spoolPrincipal {
		return Receipt{}, fmt.Errorf("wrong principal %v", p)
	}
	f.via = append(f.via, via)
	if f.failN > 0 {
		f.failN--
		return Receipt{}, errTransient
	}
	f.reqs = append(f.reqs, req)
	if f.refuse != nil {
		if rej := f.refuse(req); rej != nil {
			rej.Journaled, rej.Seq = true, f.seq
			f.seq++
			return Receipt{}, rej
		}
	}
	if rc, ok := f.byID[req.ID]; ok {
		rc.Duplicate = true
		return rc, nil
	}
	rc := Receipt{ExportID: req.ID, Seq: f.seq, Leaf: fmt.Sprintf("sha256:%064d", f.seq), Size: f.seq + 1, Digest: "sha256:x"}
	f.seq++
	f.byID[req.ID] = rc
	return rc, nil
}

func (f *fakeIngester) Reject(_ context.Context, _ *config.Principal, _ string, _ IngestRequest, cause error) (*RejectError, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rejects = append(f.rejects, cause)
	var rej *RejectError
	if !errors.As(cause, &rej) {
		return nil, fmt.Errorf("cause %T is no *RejectError", cause)
	}
	out := *rej
	out.Journaled, out.Seq = true, f.seq
	f.seq++
	return &out, nil
}

func (f *fakeIngester) calls() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.reqs)
}

func newWatcher(t *testing.T, dir string, ing Ingester, mod ...func(*Options)) *Watcher {
	t.Helper()
	o := Options{Dir: dir, Principal: spoolPrincipal, Ingester: ing, Poll: 10 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	for _, m := range mod {
		m(&o)
	}
	w, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

const goodMeta = `{"workflow":"invoices","app":"n8n","purpose":"audit","classification":"internal","destination":"archive","principal":"spool"}`

func write(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o640); err != nil {
		t.Fatal(err)
	}
}

// writePair writes the data file, then the sidecar one second newer.
func writePair(t *testing.T, dir, name, data, meta string) {
	t.Helper()
	write(t, filepath.Join(dir, name), data)
	write(t, filepath.Join(dir, name+MetaSuffix), meta)
	now := time.Now()
	if err := os.Chtimes(filepath.Join(dir, name+MetaSuffix), now, now.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
}

func scan(t *testing.T, w *Watcher) Stats {
	t.Helper()
	st, err := w.Scan(context.Background())
	if err != nil {
		t.Fatalf("scan: %v", err)
	}
	return st
}

func listDir(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	slices.Sort(out)
	return out
}

func readJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

type errDoc struct {
	ExportID string `json:"exportId"`
	Error    struct {
		Code, Message, Field string
	} `json:"error"`
	Journaled *struct{ Seq uint64 } `json:"journaled"`
}

func TestGoodPair(t *testing.T) {
	dir := t.TempDir()
	f := newFake()
	w := newWatcher(t, dir, f)
	writePair(t, dir, "inv.json", `{"n":1}`, goodMeta)
	if st := scan(t, w); st.Done != 0 || st.Waiting != 1 {
		t.Fatalf("first poll took the pair: %+v", st)
	}
	if st := scan(t, w); st.Done != 1 {
		t.Fatalf("second poll: %+v", st)
	}
	if got := listDir(t, dir); !slices.Equal(got, []string{DoneDir, RejectedDir}) {
		t.Fatalf("spool dir holds %v", got)
	}
	done := filepath.Join(dir, DoneDir)
	// done/ keeps the receipt and the sidecar: no payload copy.
	if got := listDir(t, done); !slices.Equal(got, []string{"inv.json.meta.json", "inv.json.receipt.json"}) {
		t.Fatalf("done/ holds %v", got)
	}
	var rc receiptDoc
	readJSON(t, filepath.Join(done, "inv.json.receipt.json"), &rc)
	want := DeriveID("inv.json", []byte(`{"n":1}`))
	if rc.ExportID != want || rc.File != "inv.json" || rc.Leaf == "" || rc.Time == "" {
		t.Fatalf("receipt %+v, want id %s", rc, want)
	}
	r := f.reqs[0]
	if r.Workflow != "invoices" || r.App != "n8n" || r.Purpose != "audit" || r.Classification != "internal" ||
		r.Destination != "archive" || r.MediaType != "application/json" || string(r.Data) != `{"n":1}` || f.via[0] != Via {
		t.Fatalf("request %+v via %v", r, f.via)
	}
	if st := scan(t, w); st != (Stats{}) {
		t.Fatalf("third poll: %+v", st)
	}
}

func TestMetaIDAndMediaType(t *testing.T) {
	dir := t.TempDir()
	f := newFake()
	w := newWatcher(t, dir, f)
	writePair(t, dir, "r.csv", "a,b\n", `{"id":"rep-7","workflow":"w","app":"a","principal":"spool"}`)
	writePair(t, dir, "blob", "x", `{"workflow":"w","app":"a","principal":"spool","mediaType":"application/pdf"}`)
	scan(t, w)
	if st := scan(t, w); st.Done != 2 {
		t.Fatalf("%+v", st)
	}
	byID := map[string]IngestRequest{}
	for _, r := range f.reqs {
		byID[r.ID] = r
	}
	if r, ok := byID["rep-7"]; !ok || r.MediaType != "text/csv" {
		t.Fatalf("meta id or guessed type lost: %+v", f.reqs)
	}
	if r := byID[DeriveID("blob", []byte("x"))]; r.MediaType != "application/pdf" {
		t.Fatalf("mediaType alias lost: %+v", f.reqs)
	}
}

func TestBadMetaRejected(t *testing.T) {
	cases := []struct{ name, meta, field string }{
		{"notjson", `{"workflow":`, "workflow"},
		{"unknown", `{"workflow":"w","principal":"spool","colour":"red"}`, "colour"},
		{"number", `{"workflow":1,"principal":"spool"}`, "workflow"},
		{"twice", `{"workflow":"a","workflow":"b","principal":"spool"}`, "workflow"},
		{"noprincipal", `{"workflow":"w"}`, "principal"},
		{"otherprincipal", `{"workflow":"w","principal":"n8n-prod"}`, "principal"},
		{"array", `[]`, ""},
		{"trailing", `{"principal":"spool"} {}`, ""},
	}
	dir := t.TempDir()
	f := newFake()
	w := newWatcher(t, dir, f)
	for _, c := range cases {
		writePair(t, dir, c.name, "data "+c.name, c.meta)
	}
	scan(t, w)
	if st := scan(t, w); st.Rejected != len(cases) || st.Done != 0 {
		t.Fatalf("%+v", st)
	}
	if f.calls() != 0 {
		t.Fatalf("bad sidecars reached Ingest: %+v", f.reqs)
	}
	if len(f.rejects) != len(cases) {
		t.Fatalf("%d rejections journaled, want %d", len(f.rejects), len(cases))
	}
	rej := filepath.Join(dir, RejectedDir)
	for _, c := range cases {
		var d errDoc
		readJSON(t, filepath.Join(rej, c.name+ErrorSuffix), &d)
		if d.Error.Code != "bad_meta" || d.Error.Field != c.field || d.Journaled == nil ||
			d.ExportID != DeriveID(c.name, []byte("data "+c.name)) {
			t.Errorf("%s: error file %+v", c.name, d)
		}
		for _, n := range []string{c.name, c.name + MetaSuffix} {
			if _, err := os.Stat(filepath.Join(rej, n)); err != nil {
				t.Errorf("%s: %v", c.name, err)
			}
		}
	}
}

func TestIngesterRefusalRejected(t *testing.T) {
	dir := t.TempDir()
	f := newFake()
	f.refuse = func(r IngestRequest) *RejectError {
		if strings.Contains(string(r.Data), "bad") {
			return &RejectError{Code: "schema_violation", Field: "data", Message: `at "/n": want integer`}
		}
		return nil
	}
	w := newWatcher(t, dir, f)
	writePair(t, dir, "bad.json", `{"n":"bad"}`, goodMeta)
	writePair(t, dir, "good.json", `{"n":2}`, goodMeta)
	scan(t, w)
	if st := scan(t, w); st.Rejected != 1 || st.Done != 1 {
		t.Fatalf("%+v", st)
	}
	var d errDoc
	readJSON(t, filepath.Join(dir, RejectedDir, "bad.json"+ErrorSuffix), &d)
	if d.Error.Code != "schema_violation" || d.Error.Field != "data" || !strings.Contains(d.Error.Message, "/n") {
		t.Fatalf("error file %+v", d)
	}
}

func TestTooLargeRejectedUnread(t *testing.T) {
	dir := t.TempDir()
	f := newFake()
	w := newWatcher(t, dir, f, func(o *Options) { o.MaxSize = 8 })
	writePair(t, dir, "big", "123456789", goodMeta)
	scan(t, w)
	if st := scan(t, w); st.Rejected != 1 {
		t.Fatalf("%+v", st)
	}
	var d errDoc
	readJSON(t, filepath.Join(dir, RejectedDir, "big"+ErrorSuffix), &d)
	if d.Error.Code != "too_large" || f.calls() != 0 {
		t.Fatalf("%+v, %d ingests", d, f.calls())
	}
}

func TestHalfWrittenNotTaken(t *testing.T) {
	dir := t.TempDir()
	f := newFake()
	w := newWatcher(t, dir, f)

	// Data without a sidecar, and ignored names.
	write(t, filepath.Join(dir, "lonely.csv"), "a,b\n")
	for _, n := range []string{".hidden", "x.tmp", "y.part"} {
		writePair(t, dir, n, "data", goodMeta)
	}
	// Sidecar written first, data after it (still being written).
	write(t, filepath.Join(dir, "early.csv"+MetaSuffix), goodMeta)
	time.Sleep(30 * time.Millisecond) // past the filesystem's timestamp granularity
	write(t, filepath.Join(dir, "early.csv"), "a,b\n1,")
	// A pair whose data file keeps growing.
	writePair(t, dir, "grow.csv", "a,b\n", goodMeta)

	scan(t, w)
	fh, err := os.OpenFile(filepath.Join(dir, "grow.csv"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fh.WriteString("1,2\n"); err != nil {
		t.Fatal(err)
	}
	fh.Close()
	now := time.Now()
	if err := os.Chtimes(filepath.Join(dir, "grow.csv"+MetaSuffix), now, now.Add(2*time.Second)); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if st := scan(t, w); st.Done != 0 && f.calls() > 0 && string(f.reqs[0].Data) != "a,b\n1,2\n" {
			t.Fatalf("took the growing file mid-write: %q", f.reqs[0].Data)
		}
	}
	// Only grow.csv, once settled, may have been taken, and whole.
	for _, r := range f.reqs {
		if r.ID != DeriveID("grow.csv", []byte("a,b\n1,2\n")) {
			t.Fatalf("took a half-written or ignored file: %+v", r)
		}
	}
	if f.calls() != 1 {
		t.Fatalf("grow.csv taken %d times after it settled", f.calls())
	}
	for _, n := range []string{"lonely.csv", "early.csv", "early.csv" + MetaSuffix, ".hidden", "x.tmp", "y.part"} {
		if _, err := os.Stat(filepath.Join(dir, n)); err != nil {
			t.Fatalf("%s moved: %v", n, err)
		}
	}

	// The writer finishes early.csv and writes its sidecar again: taken.
	write(t, filepath.Join(dir, "early.csv"), "a,b\n1,2\n")
	time.Sleep(30 * time.Millisecond)
	write(t, filepath.Join(dir, "early.csv"+MetaSuffix), goodMeta)
	scan(t, w)
	if st := scan(t, w); st.Done != 1 {
		t.Fatalf("finished pair not taken: %+v", st)
	}
	if got := f.reqs[1].Data; string(got) != "a,b\n1,2\n" {
		t.Fatalf("took %q", got)
	}
}

func TestGrowingFileWaits(t *testing.T) {
	dir := t.TempDir()
	f := newFake()
	w := newWatcher(t, dir, f)
	writePair(t, dir, "g", "1", goodMeta)
	for i := range 4 { // grows between every two polls, sidecar kept newest
		scan(t, w)
		writePair(t, dir, "g", strings.Repeat("1", i+2), goodMeta)
	}
	if f.calls() != 0 {
		t.Fatalf("took a file that changed between polls: %q", f.reqs[0].Data)
	}
	scan(t, w)
	scan(t, w)
	if f.calls() != 1 || string(f.reqs[0].Data) != "11111" {
		t.Fatalf("settled file: %d calls", f.calls())
	}
}

func TestRenamedIn(t *testing.T) {
	dir := t.TempDir()
	f := newFake()
	w := newWatcher(t, dir, f)
	// The tool writes the sidecar, then the data to a .part file, then
	// renames the data in: the sidecar is older, but the rename shows.
	write(t, filepath.Join(dir, "scan.png"+MetaSuffix), goodMeta)
	time.Sleep(30 * time.Millisecond)
	write(t, filepath.Join(dir, "scan.png.part"), "PNG")
	time.Sleep(30 * time.Millisecond)
	if err := os.Rename(filepath.Join(dir, "scan.png.part"), filepath.Join(dir, "scan.png")); err != nil {
		t.Fatal(err)
	}
	scan(t, w)
	if st := scan(t, w); st.Done != 1 {
		t.Fatalf("renamed-in pair not taken: %+v", st)
	}
	if f.reqs[0].MediaType != "image/png" {
		t.Fatalf("media type %q", f.reqs[0].MediaType)
	}
}

func TestTransientErrorKeepsFiles(t *testing.T) {
	dir := t.TempDir()
	f := newFake()
	f.failN = 1
	w := newWatcher(t, dir, f)
	writePair(t, dir, "a", "x", goodMeta)
	scan(t, w)
	if _, err := w.Scan(context.Background()); !errors.Is(err, errTransient) {
		t.Fatalf("want the transient error, got %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "a")); err != nil {
		t.Fatalf("pair moved after a transient error: %v", err)
	}
	if st := scan(t, w); st.Done != 1 {
		t.Fatalf("retry: %+v", st)
	}
}

func TestCrashBetweenJournalAndMove(t *testing.T) {
	dir := t.TempDir()
	f := newFake()
	id := DeriveID("a", []byte("x"))
	f.byID[id] = Receipt{ExportID: id, Seq: 41, Leaf: "sha256:orig"} // journaled, then the crash
	w := newWatcher(t, dir, f)
	writePair(t, dir, "a", "x", goodMeta)
	scan(t, w)
	scan(t, w)
	var rc receiptDoc
	readJSON(t, filepath.Join(dir, DoneDir, "a"+ReceiptSuffix), &rc)
	if rc.Seq != 41 || rc.Leaf != "sha256:orig" || !rc.Duplicate {
		t.Fatalf("receipt after re-ingest %+v, want the original seq 41", rc)
	}
}

func TestCrashAfterReceiptBeforeMove(t *testing.T) {
	dir := t.TempDir()
	f := newFake()
	w := newWatcher(t, dir, f)
	id := DeriveID("a", []byte("x"))
	orig := fmt.Sprintf(`{"exportId":%q,"seq":7,"file":"a"}`, id)
	write(t, filepath.Join(dir, DoneDir, "a"+ReceiptSuffix), orig)
	writePair(t, dir, "a", "x", goodMeta)
	scan(t, w)
	scan(t, w)
	if got := listDir(t, filepath.Join(dir, DoneDir)); !slices.Equal(got, []string{"a.meta.json", "a.receipt.json"}) {
		t.Fatalf("done/ holds %v", got)
	}
	b, _ := os.ReadFile(filepath.Join(dir, DoneDir, "a"+ReceiptSuffix))
	if string(b) != orig {
		t.Fatalf("original receipt replaced by %s", b)
	}
}

func TestCrashBetweenRenames(t *testing.T) {
	dir := t.TempDir()
	f := newFake()
	w := newWatcher(t, dir, f)
	write(t, filepath.Join(dir, DoneDir, "a"), "x")
	write(t, filepath.Join(dir, DoneDir, "a"+ReceiptSuffix), `{"exportId":"e"}`)
	write(t, filepath.Join(dir, "a"+MetaSuffix), goodMeta)
	scan(t, w)
	if got := listDir(t, filepath.Join(dir, DoneDir)); !slices.Equal(got, []string{"a.meta.json", "a.receipt.json"}) {
		t.Fatalf("done/ holds %v", got)
	}
	if got := listDir(t, dir); !slices.Equal(got, []string{DoneDir, RejectedDir}) {
		t.Fatalf("spool holds %v", got)
	}
}

func TestSameNameAgain(t *testing.T) {
	dir := t.TempDir()
	f := newFake()
	w := newWatcher(t, dir, f, func(o *Options) { o.KeepDonePayloads = true })
	for i := range 3 {
		writePair(t, dir, "daily.csv", fmt.Sprintf("day %d", i), goodMeta)
		scan(t, w)
		if st := scan(t, w); st.Done != 1 {
			t.Fatalf("round %d: %+v", i, st)
		}
	}
	want := []string{"daily.csv", "daily.csv.meta.json", "daily.csv.receipt.json",
		"daily.csv~2", "daily.csv~2.meta.json", "daily.csv~2.receipt.json",
		"daily.csv~3", "daily.csv~3.meta.json", "daily.csv~3.receipt.json"}
	if got := listDir(t, filepath.Join(dir, DoneDir)); !slices.Equal(got, want) {
		t.Fatalf("done/ holds %v", got)
	}
	b, _ := os.ReadFile(filepath.Join(dir, DoneDir, "daily.csv~3"))
	if string(b) != "day 2" {
		t.Fatalf("daily.csv~3 holds %q", b)
	}
}

func TestStartRetriesWithBackoff(t *testing.T) {
	dir := t.TempDir()
	f := newFake()
	f.failN = 3
	var logs bytes.Buffer
	var mu sync.Mutex
	w := newWatcher(t, dir, f, func(o *Options) {
		o.Logger = slog.New(slog.NewTextHandler(lockedWriter{&mu, &logs}, nil))
	})
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan struct{})
	go func() { w.Start(ctx); close(stopped) }()
	writePair(t, dir, "a", "x", goodMeta)
	w.Wake()
	deadline := time.Now().Add(10 * time.Second)
	for !exists(filepath.Join(dir, DoneDir, "a"+ReceiptSuffix)) {
		if time.Now().After(deadline) {
			t.Fatal("pair not ingested by the running watcher")
		}
		time.Sleep(5 * time.Millisecond)
	}
	var out string
	for {
		mu.Lock()
		out = logs.String()
		mu.Unlock()
		if strings.Contains(out, "recovered") || time.Now().After(deadline) {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	<-stopped
	if n := strings.Count(out, "spool ingest failing"); n != 1 {
		t.Errorf("%d failure lines, want 1:\n%s", n, out)
	}
	if n := strings.Count(out, "spool ingest recovered"); n != 1 {
		t.Errorf("%d recovery lines, want 1:\n%s", n, out)
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	b  *bytes.Buffer
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func TestNewValidates(t *testing.T) {
	dir := t.TempDir()
	auditor := &config.Principal{Name: "aud", Roles: []config.Role{config.RoleAuditor}}
	for _, o := range []Options{
		{Principal: spoolPrincipal, Ingester: newFake()},
		{Dir: dir, Ingester: newFake()},
		{Dir: dir, Principal: auditor, Ingester: newFake()},
		{Dir: dir, Principal: spoolPrincipal},
	} {
		var ce *ConfigError
		if _, err := New(o); !errors.As(err, &ce) {
			t.Errorf("New(%+v): want *ConfigError, got %v", o, err)
		}
	}
}

func TestDeriveIDStable(t *testing.T) {
	a := DeriveID("a", []byte("x"))
	if a != DeriveID("a", []byte("x")) || a == DeriveID("a", []byte("y")) || a == DeriveID("b", []byte("x")) || len(a) != len("spool-")+32 {
		t.Fatal(a)
	}
}

// TestDoneKeepsNoPayload: an ingested data file leaves no copy in done/
// (only its receipt and sidecar), and a copy left by a crash between the
// move and the unlink, or by a folder that kept copies before, is swept
// when the watcher starts; links in done/ are left alone.
func TestDoneKeepsNoPayload(t *testing.T) {
	dir := t.TempDir()
	f := newFake()
	w := newWatcher(t, dir, f)
	writePair(t, dir, "secret.csv", "name,salary\nada,100\n", goodMeta)
	scan(t, w)
	if st := scan(t, w); st.Done != 1 {
		t.Fatalf("second poll: %+v", st)
	}
	done := filepath.Join(dir, DoneDir)
	for _, n := range listDir(t, done) {
		b, err := os.ReadFile(filepath.Join(done, n))
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(b), "ada,100") {
			t.Fatalf("done/%s holds the payload", n)
		}
	}
	// A copy left behind (crash, or an older agent) goes at the next start.
	write(t, filepath.Join(done, "secret.csv"), "name,salary\nada,100\n")
	if err := os.Symlink("/etc/hostname", filepath.Join(done, "link")); err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(done, "link"+ReceiptSuffix), `{}`)
	newWatcher(t, dir, f)
	if got := listDir(t, done); !slices.Equal(got, []string{"link", "link.receipt.json", "secret.csv.meta.json", "secret.csv.receipt.json"}) {
		t.Fatalf("done/ holds %v after the sweep", got)
	}
}
