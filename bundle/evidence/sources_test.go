package evidence_test

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/edgeseal/edgeseal/bundle/bundletest"
	"github.com/edgeseal/edgeseal/bundle/custody"
	"github.com/edgeseal/edgeseal/bundle/evidence"
	"github.com/edgeseal/edgeseal/bundle/proof"
	"github.com/edgeseal/edgeseal/bundle/wire"
)

// writeSources writes f's bundles as the removable media hold them
// (DIR/*.tar, DIR/receipts/*.receipt.json) and the trust file, and
// returns the folder and the trust file's path.
func writeSources(t *testing.T, f *fixture) (dir, trust string) {
	t.Helper()
	root := t.TempDir()
	dir = filepath.Join(root, "bundles")
	if err := os.MkdirAll(filepath.Join(dir, "receipts"), 0o755); err != nil {
		t.Fatal(err)
	}
	for i, raw := range f.Raw {
		name := fmt.Sprintf("%020d.bundle", i)
		writeTestFile(t, filepath.Join(dir, name+".tar"), raw)
		writeTestFile(t, filepath.Join(dir, "receipts", name+".receipt.json"), f.Receipts[i])
	}
	trust = filepath.Join(root, "DEVICE.json")
	writeTestFile(t, trust, f.Trust)
	return dir, trust
}

func writeTestFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func loadTestSources(t *testing.T, f *fixture, dir, trust string) *evidence.Sources {
	t.Helper()
	s := evidence.NewSources(f.Log.PKIX())
	if err := s.AddTrustFile(trust); err != nil {
		t.Fatal(err)
	}
	if err := s.AddBundles([]string{dir}, nil); err != nil {
		t.Fatal(err)
	}
	return s
}

// TestSourcesSelect: a folder of bundles with its receipts/ is read; an
// export is found by id, by device and time window, and by the legal-hold
// statements of a case (the latest statement of each bundle in time
// order counts; a hold of one export selects only it); each selection's
// Input builds a proof that verifies pinned to the trust file and key.
func TestSourcesSelect(t *testing.T) {
	f := newFixture(t, 3, bundletest.Options{})
	dir, trust := writeSources(t, f)
	s := loadTestSources(t, f, dir, trust)
	if len(s.Bundles) != 3 {
		t.Fatalf("%d bundles read", len(s.Bundles))
	}
	for i, b := range s.Bundles {
		if b.Digest != wire.FormatHash(sha256.Sum256(f.Raw[i])) || len(b.Exports) == 0 {
			t.Fatalf("bundle %d: %s, %d exports", i, b.Digest, len(b.Exports))
		}
	}
	pin := proof.Options{Trust: f.Trust, ArchiveKey: f.Log.PKIX()}
	prove := func(sel evidence.Selected) {
		t.Helper()
		in, err := s.Input(sel)
		if err != nil {
			t.Fatal(err)
		}
		p, err := proof.Build(in)
		if err != nil {
			t.Fatal(err)
		}
		if rep := proof.Verify(p, pin); !rep.OK() || p.ExportID != sel.Export.ExportID {
			t.Fatalf("proof of %s: %v", sel.Export, rep.Failed())
		}
	}

	e := f.exports(t, 1)[0]
	sel, err := s.Find(e.ExportID, "", "")
	if err != nil || sel.Export != e || sel.Path != s.Bundles[1].Path {
		t.Fatalf("Find %s: %+v %v", e.ExportID, sel, err)
	}
	prove(sel)
	if _, err := s.Find("no-such-export", "", ""); err == nil {
		t.Fatal("an unknown export id was found")
	}

	all := slices.Concat(s.Bundles[0].Exports, s.Bundles[1].Exports, s.Bundles[2].Exports)
	t0, _ := wire.ParseTime(s.Bundles[1].Exports[0].Time)
	t1, _ := wire.ParseTime(s.Bundles[2].Exports[0].Time)
	var want []proof.Export
	for _, x := range all {
		if at, _ := wire.ParseTime(x.Time); !at.Before(t0) && at.Before(t1) {
			want = append(want, x)
		}
	}
	got := s.ByTime(f.Chain.DeviceName(), t0, t1)
	if len(want) == 0 || len(got) != len(want) {
		t.Fatalf("ByTime: %d exports, want %d", len(got), len(want))
	}
	for i, g := range got {
		if g.Export != want[i] {
			t.Fatalf("ByTime %d: %s, want %s", i, g.Export, want[i])
		}
	}
	if got := s.ByTime("site9/other", t0, t1.Add(time.Hour)); len(got) != 0 {
		t.Fatalf("ByTime of another device: %d", len(got))
	}

	d0, d1, d2 := s.Bundles[0].Digest, s.Bundles[1].Digest, s.Bundles[2].Digest
	holds := []evidence.Hold{
		{Case: "C-1", Time: "2026-12-01T10:00:02.000000Z", Release: true, Bundles: []string{d0}},
		{Case: "C-1", Time: "2026-12-01T10:00:01.000000Z", Bundles: []string{d0, d1}},
		{Case: "C-1", Time: "2026-12-01T10:00:03.000000Z", Bundles: []string{d2}, Export: s.Bundles[2].Exports[0].ExportID},
		{Case: "C-2", Time: "2026-12-01T10:00:04.000000Z", Release: true, Bundles: []string{d1}},
	}
	got = s.ByCase("C-1", holds)
	want = append(slices.Clone(s.Bundles[1].Exports), s.Bundles[2].Exports[0])
	if len(got) != len(want) {
		t.Fatalf("ByCase: %d exports, want %d", len(got), len(want))
	}
	for i, g := range got {
		if g.Export != want[i] {
			t.Fatalf("ByCase %d: %s, want %s", i, g.Export, want[i])
		}
	}
	prove(got[len(got)-1])
	if got := s.ByCase("C-3", holds); len(got) != 0 {
		t.Fatalf("ByCase of a case without holds: %d", len(got))
	}
}

// TestSourcesMissing: an export whose bundle's receipt or device's trust
// file is not among the sources is a MissingError naming it.
func TestSourcesMissing(t *testing.T) {
	f := newFixture(t, 2, bundletest.Options{})
	dir, trust := writeSources(t, f)
	if err := os.Remove(filepath.Join(dir, "receipts", fmt.Sprintf("%020d.bundle.receipt.json", 1))); err != nil {
		t.Fatal(err)
	}
	s := loadTestSources(t, f, dir, trust)
	var me *evidence.MissingError
	sel, err := s.Find(f.exports(t, 1)[0].ExportID, "", "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Input(sel); !errors.As(err, &me) || me.Bundle != sel.Path || me.Device != f.Chain.DeviceName() {
		t.Fatalf("missing receipt: %v", err)
	}
	s.Trust = map[string][]byte{}
	sel, err = s.Find(f.exports(t, 0)[0].ExportID, "", "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Input(sel); !errors.As(err, &me) || me.Bundle != "" || me.Device != f.Chain.DeviceName() {
		t.Fatalf("missing trust file: %v", err)
	}
}

// TestSourcesRefuse: a bundle file or receipts folder that is a symbolic
// link, a trust file or bundle that does not parse, are refused.
func TestSourcesRefuse(t *testing.T) {
	f := newFixture(t, 1, bundletest.Options{})
	dir, trust := writeSources(t, f)
	root := filepath.Dir(dir)
	link := filepath.Join(root, "link.tar")
	if err := os.Symlink(filepath.Join(dir, fmt.Sprintf("%020d.bundle.tar", 0)), link); err != nil {
		t.Fatal(err)
	}
	s := evidence.NewSources(f.Log.PKIX())
	if err := s.AddBundles([]string{link}, nil); err == nil {
		t.Fatal("a linked bundle file was read")
	}
	rlink := filepath.Join(root, "receipts-link")
	if err := os.Symlink(filepath.Join(dir, "receipts"), rlink); err != nil {
		t.Fatal(err)
	}
	if err := s.AddReceipts(rlink); err == nil {
		t.Fatal("a linked receipts folder was read")
	}
	bad := filepath.Join(root, "bad.tar")
	writeTestFile(t, bad, []byte("not a bundle"))
	if err := s.AddBundleFile(bad); err == nil {
		t.Fatal("a file that is no bundle was read")
	}
	if err := s.AddTrustFile(filepath.Join(dir, fmt.Sprintf("%020d.bundle.tar", 0))); err == nil {
		t.Fatal("a bundle was read as a trust file")
	}
	if err := s.AddTrustFile(trust); err != nil {
		t.Fatal(err)
	}
	if len(s.Bundles) != 0 || len(s.Trust) != 1 {
		t.Fatalf("%d bundles, %d trust files kept", len(s.Bundles), len(s.Trust))
	}
}

// TestRecordBodies: the bodies of a bundle's policy.change records are
// found among its records, in order; other records are not.
func TestRecordBodies(t *testing.T) {
	body, digest := signedPolicy(t)
	c, err := bundletest.NewChain(t.Context(), nil, 0, bundletest.Options{Policy: digest})
	if err != nil {
		t.Fatal(err)
	}
	c.Journal(custody.TypePolicyChange, custody.Actor{Kind: "agent", ID: "policy", Via: "start"}, body)
	b, err := c.Next(t.Context(), 3)
	if err != nil {
		t.Fatal(err)
	}
	recs, err := b.Records()
	if err != nil {
		t.Fatal(err)
	}
	policies, auths := evidence.RecordBodies(recs)
	if len(policies) != 1 || string(policies[0]) != string(body) || len(auths) != 0 {
		t.Fatalf("%d policies, %d PCR authorizations", len(policies), len(auths))
	}
	if p, a := evidence.RecordBodies(recs[len(recs)-1:]); len(p)+len(a) != 0 {
		t.Fatal("bodies found in the last record, not a policy.change")
	}
}

// TestAppendAccess: each access is one JSON line appended to the access
// log file, which is created with mode 0600.
func TestAppendAccess(t *testing.T) {
	path := filepath.Join(t.TempDir(), "access.jsonl")
	at := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	for _, target := range []string{"e-1", "e-2"} {
		if err := evidence.AppendAccess(path, evidence.Access{Time: at, Actor: "auditor", Action: "evidence", Target: target}); err != nil {
			t.Fatal(err)
		}
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"time":"2026-12-01T10:00:00Z","actor":"auditor","action":"evidence","target":"e-1"}` + "\n" +
		`{"time":"2026-12-01T10:00:00Z","actor":"auditor","action":"evidence","target":"e-2"}` + "\n"
	if string(raw) != want {
		t.Fatalf("access log:\n%s\nwant\n%s", raw, want)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v %v", fi.Mode(), err)
	}
}
