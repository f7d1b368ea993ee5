package archive_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/edgeseal/edgeseal/archive"
	"github.com/edgeseal/edgeseal/bundle/bundletest"
	"github.com/edgeseal/edgeseal/bundle/custody"
	"github.com/edgeseal/edgeseal/bundle/merkle"
	"github.com/edgeseal/edgeseal/bundle/wire"
)

func waitIndexed(t *testing.T, a *archive.Archive) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := a.WaitIndexed(ctx, a.LogSize()); err != nil {
		t.Fatalf("export index covers %d of %d log entries: %v", a.IndexedUpTo(), a.LogSize(), err)
	}
}

// indexedChain is a device with 3 accepted bundles of 6 records; the
// second bundle leads with an export refused at the agent.
func indexedChain(t *testing.T, e *env) *bundletest.Chain {
	t.Helper()
	c := newChain(t, 1, bundletest.Options{Records: 6})
	e.approve(c)
	e.accept(c, c.Bundles[0])
	body, _ := json.Marshal(custody.RejectedBody{ExportID: "exp-refused", App: "n8n", Workflow: "payroll", Policy: "sha256:" + fmt.Sprintf("%064x", 1), Reason: "classification.forbidden"})
	c.Journal(custody.TypeExportRejected, custody.Actor{Kind: "principal", ID: "mallory", Via: "api"}, body)
	for range 2 {
		b, err := c.Next(t.Context(), 6)
		if err != nil {
			t.Fatal(err)
		}
		e.accept(c, b)
	}
	waitIndexed(t, e.a)
	return c
}

func search(t *testing.T, a *archive.Archive, q archive.ExportQuery) []*archive.ExportEntry {
	t.Helper()
	var out []*archive.ExportEntry
	for range 100 {
		p, err := a.SearchExports(t.Context(), q)
		if err != nil {
			t.Fatalf("search %+v: %v", q, err)
		}
		out = append(out, p.Items...)
		if p.Next == "" {
			return out
		}
		q.Cursor = p.Next
	}
	t.Fatal("paging does not end")
	return nil
}

// TestExportIndexSearch: every export and refused export of the accepted
// bundles is indexed once, with its bundle, log index, object and
// retain-until; each field finds it, paging walks every entry once in
// time order either way, a time range bounds it, and a cursor of another
// query is refused.
func TestExportIndexSearch(t *testing.T) {
	e := newEnv(t)
	c := indexedChain(t, e)
	all := search(t, e.a, archive.ExportQuery{Limit: 3})
	// Bundle 0: agent.start + 5 exports; bundles 1, 2: 5 exports and a
	// purge each; bundle 1 leads with the refused export.
	var exports, refused int
	seen := map[string]bool{}
	for i, en := range all {
		if seen[en.Export] {
			t.Fatalf("export %s listed twice", en.Export)
		}
		seen[en.Export] = true
		if i > 0 && en.Time > all[i-1].Time {
			t.Fatalf("not newest first: %s after %s", en.Time, all[i-1].Time)
		}
		if en.Device != c.DeviceName() || en.Site != c.Opts.Site || en.LogIndex == nil || en.Object == "" || en.RetainUntil == "" || en.AcceptedAt == "" || en.Bundle == "" {
			t.Fatalf("entry %+v", en)
		}
		switch en.Status {
		case archive.StatusAccepted:
			exports++
			if en.Payload == nil || en.Workflow != "monthly-report" || en.Principal != "n8n-reports" || en.Classification != "internal" {
				t.Fatalf("export entry %+v", en)
			}
		case archive.StatusRefused:
			refused++
			if en.RefusedBy != archive.RefusedByAgent || en.Reason != "classification.forbidden" || en.Principal != "mallory" || en.Export != "exp-refused" {
				t.Fatalf("refused entry %+v", en)
			}
		}
	}
	if refused != 1 || exports < 10 {
		t.Fatalf("%d exports, %d refused indexed: %d entries", exports, refused, len(all))
	}
	asc := search(t, e.a, archive.ExportQuery{Limit: 4, Asc: true})
	if len(asc) != len(all) || asc[0].Export != all[len(all)-1].Export {
		t.Fatalf("ascending: %d entries, first %s", len(asc), asc[0].Export)
	}
	one := all[len(all)/2]
	li := *one.LogIndex
	for name, q := range map[string]archive.ExportQuery{
		"export": {Export: one.Export}, "bundle": {Bundle: one.Bundle, Export: one.Export}, "log_index": {LogIndex: &li, Export: one.Export},
		"principal": {Principal: one.Principal, Export: one.Export}, "device": {Device: one.Device, Export: one.Export},
		"workflow": {Workflow: one.Workflow, Export: one.Export}, "app": {App: one.App, Export: one.Export},
		"classification": {Classification: one.Classification, Export: one.Export}, "site": {Site: one.Site, Export: one.Export},
		"status": {Status: one.Status, Export: one.Export},
	} {
		if got := search(t, e.a, q); len(got) != 1 || got[0].Export != one.Export {
			t.Errorf("by %s: %d entries", name, len(got))
		}
	}
	if got := search(t, e.a, archive.ExportQuery{Reason: "classification.forbidden"}); len(got) != 1 || got[0].Export != "exp-refused" {
		t.Errorf("by reason: %d entries", len(got))
	}
	if got := search(t, e.a, archive.ExportQuery{Status: archive.StatusRefused, Workflow: "payroll"}); len(got) != 1 {
		t.Errorf("refused and workflow payroll: %d entries", len(got))
	}
	if got := search(t, e.a, archive.ExportQuery{Workflow: "monthly-report", Status: archive.StatusRefused}); len(got) != 0 {
		t.Errorf("refused and workflow monthly-report: %d entries", len(got))
	}
	if got := search(t, e.a, archive.ExportQuery{Bundle: one.Bundle}); len(got) < 5 {
		t.Errorf("by bundle: %d entries", len(got))
	}
	// A time range [from, to): the middle entries.
	from, _ := wire.ParseTime(all[len(all)-3].Time)
	to, _ := wire.ParseTime(all[2].Time)
	if got := search(t, e.a, archive.ExportQuery{From: from, To: to, Limit: 2}); len(got) != len(all)-5 {
		t.Errorf("time range: %d entries, want %d", len(got), len(all)-5)
	}
	p, err := e.a.SearchExports(t.Context(), archive.ExportQuery{Limit: 2})
	if err != nil || p.Next == "" {
		t.Fatal(p, err)
	}
	if _, err := e.a.SearchExports(t.Context(), archive.ExportQuery{Limit: 2, Workflow: "x", Cursor: p.Next}); !errors.Is(err, archive.ErrBadCursor) {
		t.Errorf("a cursor of another query: %v", err)
	}
	if _, err := e.a.SearchExports(t.Context(), archive.ExportQuery{Cursor: "!!"}); !errors.Is(err, archive.ErrBadCursor) {
		t.Errorf("a malformed cursor: %v", err)
	}
	// The single export and its record as the bundle holds it.
	en, rec, others, err := e.a.Export(t.Context(), one.Device, one.Export)
	if err != nil || en.Export != one.Export || others != 0 {
		t.Fatalf("Export: %+v %d %v", en, others, err)
	}
	if r, err := custody.ParseRecord(rec); err != nil || r.Seq != one.Seq {
		t.Fatalf("record: %v", err)
	}
	if _, _, _, err := e.a.Export(t.Context(), one.Device, "nope"); !errors.Is(err, archive.ErrNotFound) {
		t.Fatalf("absent export: %v", err)
	}
	// Device summary and per-day counts.
	sums, err := e.a.DeviceSummaries(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if s := sums[c.DeviceName()]; s.Bundles != 3 || s.Exports != uint64(exports) || s.Refused != 1 || s.LastLogIndex != 2 {
		t.Fatalf("device summary %+v", s)
	}
	days, trunc, err := e.a.ExportStats(t.Context(), "status", time.Time{}, time.Now().AddDate(1, 0, 0))
	if err != nil || trunc {
		t.Fatal(err)
	}
	var acc, ref uint64
	for _, d := range days {
		acc += d.Counts[archive.StatusAccepted]
		ref += d.Counts[archive.StatusRefused]
	}
	if acc != uint64(exports) || ref != 1 {
		t.Fatalf("stats: %d accepted, %d refused; want %d, 1", acc, ref, exports)
	}
}

// TestExportIndexCatchUp: the indexer stopped between the accept and the
// index (before a bundle, and in the middle of one, past its first
// chunk) as a crash would; after a restart it indexes every entry exactly
// once from the archive log.
func TestExportIndexCatchUp(t *testing.T) {
	e := newEnv(t)
	crash := errors.New("crash")
	archive.SetIndexHook(func(li, off uint64) error {
		if li >= 1 || off > 0 {
			return crash
		}
		return nil
	})
	t.Cleanup(func() { archive.SetIndexHook(nil) })
	c := newChain(t, 2, bundletest.Options{Records: 300, PayloadSize: 16})
	e.approve(c)
	e.accept(c, c.Bundles[0])
	e.accept(c, c.Bundles[1])
	if got := e.a.IndexedUpTo(); got != 0 {
		t.Fatalf("indexed up to %d with the indexer stopped", got)
	}
	e.reopen()
	// Now let the first chunk of bundle 1 through, then stop again.
	archive.SetIndexHook(func(li, off uint64) error {
		if li == 1 && off > 256 || li > 1 {
			return crash
		}
		return nil
	})
	deadline := time.Now().Add(10 * time.Second)
	for e.a.IndexedUpTo() < 1 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	e.reopen()
	archive.SetIndexHook(nil)
	e.reopen()
	waitIndexed(t, e.a)
	all := search(t, e.a, archive.ExportQuery{Limit: 1000})
	seen := map[string]int{}
	for _, en := range all {
		seen[en.Export]++
	}
	for id, n := range seen {
		if n != 1 {
			t.Fatalf("export %s indexed %d times", id, n)
		}
	}
	days, _, err := e.a.ExportStats(t.Context(), "status", time.Time{}, time.Now().AddDate(1, 0, 0))
	if err != nil {
		t.Fatal(err)
	}
	var n uint64
	for _, d := range days {
		n += d.Counts[archive.StatusAccepted]
	}
	if n != uint64(len(all)) || len(all) < 500 {
		t.Fatalf("counted %d, listed %d exports", n, len(all))
	}
	// Without its directory the index is rebuilt from the log.
	e.a.Close()
	e.a = nil
	if err := os.RemoveAll(filepath.Join(e.dir, "search")); err != nil {
		t.Fatal(err)
	}
	e.open()
	waitIndexed(t, e.a)
	if again := search(t, e.a, archive.ExportQuery{Limit: 1000}); len(again) != len(all) {
		t.Fatalf("rebuilt index: %d entries, want %d", len(again), len(all))
	}
}

// TestAccessLog: reads appended to the access log are found by export,
// device, bundle and user, survive a restart, and are proven in a
// checkpoint signed by the archive's key.
func TestAccessLog(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	sub, cancel := e.a.Subscribe()
	defer cancel()
	for i := range 5 {
		_, err := e.a.RecordAccess(ctx, archive.AccessEntry{
			User: fmt.Sprintf("user%d", i%2), Via: "local", Roles: []string{"auditor"}, Action: "export.get", Outcome: "ok",
			Target: archive.AccessTarget{Device: "s/d", Export: fmt.Sprintf("exp-%d", i%3)}, Remote: "127.0.0.1:1",
			UserAgent: string(bytes.Repeat([]byte("é"), 300)),
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if ev := <-sub; ev.Type != archive.EventAccess {
		t.Fatalf("event %s", ev.Type)
	}
	check := func() {
		t.Helper()
		p, err := e.a.SearchAccess(ctx, archive.AccessQuery{Export: "exp-0"})
		if err != nil || len(p.Items) != 2 {
			t.Fatalf("by export: %d %v", len(p.Items), err)
		}
		if p.Items[0].Index != 3 || p.Items[1].Index != 0 {
			t.Fatalf("not newest first: %d, %d", p.Items[0].Index, p.Items[1].Index)
		}
		if ua := p.Items[0].Entry.UserAgent; len(ua) > 200 || ua == "" {
			t.Fatalf("user agent of %d bytes", len(ua))
		}
		if p, _ := e.a.SearchAccess(ctx, archive.AccessQuery{User: "user1"}); len(p.Items) != 2 {
			t.Fatalf("by user: %d", len(p.Items))
		}
		if p, _ := e.a.SearchAccess(ctx, archive.AccessQuery{Device: "s/d", Limit: 2}); len(p.Items) != 2 || p.Next == "" {
			t.Fatalf("by device, paged: %d %q", len(p.Items), p.Next)
		}
	}
	check()
	e.reopen()
	check()
	pr, err := e.a.ProveAccess(ctx, 3)
	if err != nil {
		t.Fatal(err)
	}
	v, _ := note.NewVerifier(e.a.VerifierKey())
	n, err := note.Open([]byte(pr.Checkpoint), note.VerifierList(v))
	if err != nil {
		t.Fatalf("access checkpoint: %v", err)
	}
	cp, err := merkle.ParseAnyCheckpoint([]byte(n.Text))
	if err != nil || cp.Origin != archive.DefaultName+"/access" || cp.Size != 5 {
		t.Fatalf("checkpoint %+v %v", cp, err)
	}
	var proof [][32]byte
	for _, h := range pr.Proof {
		d, _ := wire.ParseHash(h)
		proof = append(proof, d)
	}
	leaf, _ := wire.ParseHash(pr.Leaf)
	if err := merkle.VerifyInclusion(proof, 3, cp.Size, cp.Root, leaf); err != nil {
		t.Fatal(err)
	}
}

// FuzzSearchCursor: a cursor from outside is refused (ErrBadCursor) or
// walks within the query's own keys; it never panics or reads past them.
func FuzzSearchCursor(f *testing.F) {
	a, err := archive.Open(f.Context(), archive.Options{Dir: f.TempDir(), Key: testKey})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { a.Close() })
	f.Add("", "")
	f.Add("AAAAAAAAAAAA", "x")
	f.Add("eC0tLS0tLS0t", "")
	f.Fuzz(func(t *testing.T, cursor, workflow string) {
		for _, asc := range []bool{false, true} {
			_, err := a.SearchExports(t.Context(), archive.ExportQuery{Cursor: cursor, Workflow: workflow, Asc: asc, Limit: 5})
			if err != nil && !errors.Is(err, archive.ErrBadCursor) {
				t.Fatalf("cursor %q: %v", cursor, err)
			}
			_, err = a.SearchAccess(t.Context(), archive.AccessQuery{Cursor: cursor, User: workflow, Asc: asc, Limit: 5})
			if err != nil && !errors.Is(err, archive.ErrBadCursor) {
				t.Fatalf("access cursor %q: %v", cursor, err)
			}
		}
	})
}

// TestExportIndexSkipsMissingBundle: a logged bundle whose object is gone
// (lost, not purged) before it was indexed is skipped with an error logged; the
// bundles after it are indexed.
func TestExportIndexSkipsMissingBundle(t *testing.T) {
	e := newEnv(t)
	archive.SetIndexHook(func(li, off uint64) error { return errors.New("stopped") })
	t.Cleanup(func() { archive.SetIndexHook(nil) })
	c := newChain(t, 2, bundletest.Options{Records: 5})
	e.approve(c)
	e.accept(c, c.Bundles[0])
	e.accept(c, c.Bundles[1])
	gone := sha256Sum(raw(t, c.Bundles[0]))
	fs, err := archive.NewFSStore(filepath.Join(e.dir, "objects"))
	if err != nil {
		t.Fatal(err)
	}
	e.a.Close()
	e.a = nil
	if err := os.Remove(fs.Path(gone)); err != nil {
		t.Fatal(err)
	}
	archive.SetIndexHook(nil)
	e.open()
	waitIndexed(t, e.a)
	all := search(t, e.a, archive.ExportQuery{})
	if len(all) == 0 {
		t.Fatal("the bundle after the missing one was not indexed")
	}
	for _, en := range all {
		if en.Bundle == wire.FormatHash(gone) {
			t.Fatalf("an entry of the missing bundle: %+v", en)
		}
	}
}
