package spool

import (
	"context"
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/edgeseal/edgeseal/bundle/custody"
	"github.com/edgeseal/edgeseal/bundle/merkle"
	"github.com/edgeseal/edgeseal/bundle/wire"
	"golang.org/x/sys/unix"
)

func exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}

// faultPlan fails the failAt-th call the spool makes through the fault
// hook (1-based; 0: none), and with plus every later one, as strace's
// inject=...:when=N[+] does: the call is not made.
type faultPlan struct {
	mu     sync.Mutex
	calls  []string
	failAt int
	plus   bool
	errno  unix.Errno
	hit    int
}

func (p *faultPlan) hook(call, name string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.calls = append(p.calls, call+" "+name)
	n := len(p.calls)
	if p.failAt > 0 && (n == p.failAt || (p.plus && n > p.failAt)) {
		p.hit++
		return p.errno
	}
	return nil
}

func (p *faultPlan) install(t *testing.T) {
	fault = p.hook
	t.Cleanup(func() { fault = nil })
}

// movePath is one way through finish: a pair the core journals (done/,
// with the sidecar's id or the derived one) or refuses (rejected/).
type movePath struct {
	label    string
	sub      string
	data     string
	metaFor  func(id string) string // the sidecar, given the scenario's id ("" derived)
	explicit bool
}

var movePaths = []movePath{
	{label: "done-id", sub: DoneDir, data: `{"no":"INV-7"}`, explicit: true, metaFor: func(id string) string {
		return fmt.Sprintf(`{"id":%q,"workflow":"invoices","app":"n8n","classification":"internal","destination":"archive","principal":"spool"}`, id)
	}},
	{label: "done-derived", sub: DoneDir, data: `{"no":"INV-8"}`, metaFor: func(string) string {
		return `{"workflow":"invoices","app":"n8n","classification":"internal","destination":"archive","principal":"spool"}`
	}},
	{label: "rejected", sub: RejectedDir, data: `{"no":"nope"}`, explicit: true, metaFor: func(id string) string {
		return fmt.Sprintf(`{"id":%q,"workflow":"invoices","app":"n8n","classification":"internal","destination":"archive","principal":"spool"}`, id)
	}},
}

// interrupted is one scenario: the pair name is dropped into a fresh
// spool folder, the watcher takes it with call failAt failing (and every
// later one when crash is set, then the watcher is dropped and a new one
// started: a stop right after that call), and then polls until the pair
// is through.
type interrupted struct {
	path   movePath
	keep   bool
	failAt int
	crash  bool
}

func (s interrupted) String() string {
	mode := "fail once, poll again"
	if s.crash {
		mode = "stop there, restart"
	}
	return fmt.Sprintf("%s keep=%v call %d %s", s.path.label, s.keep, s.failAt, mode)
}

// run plays s against the core r in dir and returns the calls made up
// to and including the fault, the pair's name and export id.
func (s interrupted) run(t *testing.T, r *coreRig, dir string) (calls []string, name, id string) {
	t.Helper()
	spoolDir := filepath.Join(dir, "spool")
	name = fmt.Sprintf("%s-%v-%d-%v.json", s.path.label, s.keep, s.failAt, s.crash)
	id = ""
	if s.path.explicit {
		id = "id-" + strings.TrimSuffix(name, ".json")
	}
	keep := func(o *Options) { o.KeepDonePayloads = s.keep }
	w := newWatcher(t, spoolDir, CoreIngester(r.core), keep)
	writePair(t, spoolDir, name, s.path.data, s.path.metaFor(id))
	if id == "" {
		id = DeriveID(name, []byte(s.path.data))
	}
	plan := &faultPlan{failAt: s.failAt, plus: s.crash, errno: unix.EIO}
	plan.install(t)
	ctx := context.Background()
	if st, err := w.Scan(ctx); err != nil || st.Waiting != 1 {
		t.Fatalf("%s: first poll: %+v %v", s, st, err)
	}
	_, _ = w.Scan(ctx) // takes the pair; the fault hits here (an error, or the pair waits)
	calls = slices.Clone(plan.calls)
	if s.crash {
		fault = nil
		w = newWatcher(t, spoolDir, CoreIngester(r.core), keep)
	}
	for i := range 6 {
		if _, err := w.Scan(ctx); err != nil && (s.crash || i > 0) {
			t.Fatalf("%s: poll %d after the fault: %v", s, i, err)
		}
	}
	if s.failAt > 0 && plan.hit == 0 {
		t.Fatalf("%s: the fault never hit (%d calls)", s, len(plan.calls))
	}
	return calls, name, id
}

// check asserts the end state: the spool folder holds nothing but its
// subfolders, the pair sits in its first slot with its result file
// naming its export id, and a journaled export is journaled once, at the
// seq and leaf its receipt gives.
func (s interrupted) check(t *testing.T, r *coreRig, dir, name, id string) {
	t.Helper()
	spoolDir := filepath.Join(dir, "spool")
	if got := listDir(t, spoolDir); !slices.Equal(got, []string{DoneDir, RejectedDir}) {
		t.Fatalf("%s: the spool folder holds %v", s, got)
	}
	var inSub []string
	for _, n := range listDir(t, filepath.Join(spoolDir, s.path.sub)) {
		if strings.HasPrefix(n, name) || strings.HasPrefix(n, "."+name) {
			inSub = append(inSub, n)
		}
	}
	want := []string{name + MetaSuffix, name + resultSuffix(s.path.sub)}
	if s.keep || s.path.sub == RejectedDir {
		want = append([]string{name}, want...)
	}
	slices.Sort(want)
	if !slices.Equal(inSub, want) {
		t.Fatalf("%s: %s/ holds %v, want %v", s, s.path.sub, inSub, want)
	}
	if s.path.sub == RejectedDir {
		var d errDoc
		readJSON(t, filepath.Join(spoolDir, RejectedDir, name+ErrorSuffix), &d)
		if d.ExportID != id || d.Journaled == nil {
			t.Fatalf("%s: error file %+v", s, d)
		}
		return
	}
	var rc receiptDoc
	readJSON(t, filepath.Join(spoolDir, DoneDir, name+ReceiptSuffix), &rc)
	seqs := exportSeqs(t, r, id)
	if rc.ExportID != id || len(seqs) != 1 || seqs[0] != rc.Seq {
		t.Fatalf("%s: receipt %+v; export %s journaled at %v", s, rc.Receipt, id, seqs)
	}
	rec, err := r.j.Record(rc.Seq)
	if err != nil || wire.FormatHash(merkle.LeafHash(rec)) != rc.Leaf {
		t.Fatalf("%s: receipt leaf %s is not record %d's (%v)", s, rc.Leaf, rc.Seq, err)
	}
}

// exportSeqs lists the seqs of the export records of id.
func exportSeqs(t *testing.T, r *coreRig, id string) []uint64 {
	t.Helper()
	var out []uint64
	err := r.j.Records(context.Background(), 0, r.j.Size(), func(seq uint64, raw []byte) error {
		pr, err := custody.ParseRecord(raw)
		if err != nil || pr.Type != custody.TypeExport {
			return err
		}
		b, err := pr.ExportBody()
		if err == nil && b.ExportID == id {
			out = append(out, seq)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestEveryInterruptedMoveRecovers enumerates the system calls a pair's
// ingest makes through the spool (opens of the pair and the folders, the
// result file's lookup, temp file, fsync, rename and directory sync, the
// two renames of the pair, the unlink of the payload copy, the syncs of
// done/ and the spool folder; the same for rejected/) and, for each one,
// fails it as a failing disk would, once (the next polls of the same
// watcher must finish the pair) and from there on followed by a restart
// (a stop right after that call: a new watcher over the same folder). A
// real core journals. Every pair must end in its first slot of done/
// (rejected/) with its sidecar and the result file naming its export id,
// nothing left in the spool folder and no temp file, and a journaled
// export journaled exactly once, its receipt the original (same seq and
// leaf) however often it was taken again.
func TestEveryInterruptedMoveRecovers(t *testing.T) {
	dir := t.TempDir()
	r := openCore(t, dir)
	for _, p := range movePaths {
		for _, keep := range []bool{false, true} {
			if keep && p.sub == RejectedDir {
				continue
			}
			clean := interrupted{path: p, keep: keep}
			calls, name, id := clean.run(t, r, dir)
			clean.check(t, r, dir, name, id)
			if len(calls) < 10 {
				t.Fatalf("%s: only %d calls: %v", clean, len(calls), calls)
			}
			t.Logf("%s keep=%v: %d calls: %s", p.label, keep, len(calls), strings.Join(calls, "; "))
			for k := 1; k <= len(calls); k++ {
				for _, crash := range []bool{false, true} {
					s := interrupted{path: p, keep: keep, failAt: k, crash: crash}
					_, name, id := s.run(t, r, dir)
					s.check(t, r, dir, name, id)
				}
			}
		}
	}
}

// TestResultLookupFailureIsNoAnswer: a receipt lookup the disk fails
// (ENOSPC on its open: what left three pairs of a fault soak without a
// receipt under their name) is an error, not a used slot: the pair stays
// and the next poll moves it to NAME, never NAME~2.
func TestResultLookupFailureIsNoAnswer(t *testing.T) {
	dir := t.TempDir()
	f := newFake()
	w := newWatcher(t, dir, f)
	writePair(t, dir, "a.csv", "x", goodMeta)
	plan := &faultPlan{errno: unix.ENOSPC}
	fault = func(call, name string) error {
		if call == "openat" && name == "a.csv"+ReceiptSuffix && plan.hit == 0 {
			plan.hit++
			return unix.ENOSPC
		}
		return nil
	}
	t.Cleanup(func() { fault = nil })
	scan(t, w)
	if _, err := w.Scan(context.Background()); err == nil || plan.hit != 1 {
		t.Fatalf("lookup failed %d times; poll answered %v, want the error", plan.hit, err)
	}
	if got := listDir(t, dir); !slices.Equal(got, []string{"a.csv", "a.csv.meta.json", DoneDir, RejectedDir}) {
		t.Fatalf("after the failed lookup the spool holds %v", got)
	}
	scan(t, w)
	scan(t, w)
	if got := listDir(t, filepath.Join(dir, DoneDir)); !slices.Equal(got, []string{"a.csv.meta.json", "a.csv.receipt.json"}) {
		t.Fatalf("done/ holds %v", got)
	}
}

// TestSidecarRecoveredAfterSweep: a slot whose data copy is gone (swept
// by an agent that dropped it before moving the sidecar) gets its
// sidecar back when the receipt names the sidecar's id, or the id derived
// from the name and the receipt's digest; a sidecar of another export
// (same name, another id) waits for its data file instead, and a sidecar
// that is a symbolic link is not read through (its target's id is not
// taken). Temp files of result files go at start.
func TestSidecarRecoveredAfterSweep(t *testing.T) {
	dir := t.TempDir()
	done := filepath.Join(dir, DoneDir)
	if err := os.MkdirAll(done, 0o750); err != nil {
		t.Fatal(err)
	}
	withID := `{"id":"inv-1","workflow":"invoices","app":"n8n","classification":"internal","destination":"archive","principal":"spool"}`
	write(t, filepath.Join(done, "a.json"+ReceiptSuffix), `{"exportId":"inv-1","seq":3,"digest":"sha256:`+strings.Repeat("ab", 32)+`"}`)
	write(t, filepath.Join(dir, "a.json"+MetaSuffix), withID)
	d := sha256.Sum256([]byte("payload"))
	write(t, filepath.Join(done, "b.csv"+ReceiptSuffix), fmt.Sprintf(`{"exportId":%q,"seq":4,"digest":%q}`, DeriveID("b.csv", []byte("payload")), wire.FormatHash(d)))
	write(t, filepath.Join(dir, "b.csv"+MetaSuffix), goodMeta)
	write(t, filepath.Join(done, "c.json"+ReceiptSuffix), `{"exportId":"inv-9","seq":5}`)
	write(t, filepath.Join(dir, "c.json"+MetaSuffix), strings.Replace(withID, "inv-1", "inv-10", 1))
	// A sidecar that is a link is never read: the id its target names
	// does not match the slot.
	outside := filepath.Join(t.TempDir(), "meta")
	write(t, outside, strings.Replace(withID, "inv-1", "inv-4", 1))
	write(t, filepath.Join(done, "d.json"+ReceiptSuffix), `{"exportId":"inv-4","seq":6}`)
	if err := os.Symlink(outside, filepath.Join(dir, "d.json"+MetaSuffix)); err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(done, ".c.json"+ReceiptSuffix+".tmp-4242"), "partial")
	write(t, filepath.Join(done, ".keep.tmp-1"), "not ours")

	newWatcher(t, dir, newFake()) // recovery at start
	if got := listDir(t, done); !slices.Equal(got, []string{".keep.tmp-1", "a.json.meta.json", "a.json.receipt.json", "b.csv.meta.json", "b.csv.receipt.json", "c.json.receipt.json", "d.json.receipt.json"}) {
		t.Fatalf("done/ holds %v", got)
	}
	if got := listDir(t, dir); !slices.Equal(got, []string{"c.json.meta.json", "d.json.meta.json", DoneDir, RejectedDir}) {
		t.Fatalf("the spool holds %v", got)
	}
}

// TestHalfMovedPairSurvivesRestart: the data file moved to done/ and the
// sidecar's rename failed; the agent stops there. The new watcher moves
// the sidecar at start, before payload copies are swept, so the slot is
// complete and no copy is left.
func TestHalfMovedPairSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	f := newFake()
	w := newWatcher(t, dir, f)
	writePair(t, dir, "a.csv", "x", goodMeta)
	fault = func(call, name string) error {
		if call == "renameat" && name == "a.csv"+MetaSuffix {
			return unix.EIO
		}
		return nil
	}
	t.Cleanup(func() { fault = nil })
	scan(t, w)
	if _, err := w.Scan(context.Background()); err == nil {
		t.Fatal("the failed rename was not reported")
	}
	if got := listDir(t, filepath.Join(dir, DoneDir)); !slices.Equal(got, []string{"a.csv", "a.csv.receipt.json"}) {
		t.Fatalf("half-moved: done/ holds %v", got)
	}
	fault = nil
	newWatcher(t, dir, f)
	if got := listDir(t, filepath.Join(dir, DoneDir)); !slices.Equal(got, []string{"a.csv.meta.json", "a.csv.receipt.json"}) {
		t.Fatalf("after the restart done/ holds %v", got)
	}
	if got := listDir(t, dir); !slices.Equal(got, []string{DoneDir, RejectedDir}) {
		t.Fatalf("after the restart the spool holds %v", got)
	}
	if f.calls() != 1 {
		t.Fatalf("%d ingests, want 1", f.calls())
	}
}
