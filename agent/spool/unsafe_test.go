package spool

import (
	"crypto/sha256"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/edgeseal/edgeseal/bundle/custody"
	"github.com/edgeseal/edgeseal/bundle/wire"
	"github.com/edgeseal/edgeseal/internal/e2etest"
)

// secretInvoice is a file the spool's writers cannot read but the agent
// can; it fits the invoices workflow, so following a link to it would
// journal (and ship) it as an export. It is as long as the file dropped
// before the swap, so its size matches what the poll saw.
const secretInvoice = `{"no":"INV-9"}`

// writeSecret writes secretInvoice outside the spool folder.
func writeSecret(t *testing.T, dir string) string {
	t.Helper()
	p := filepath.Join(dir, "secret.json")
	write(t, p, secretInvoice)
	return p
}

// noExportOf fails if any export record was journaled, or any record
// carries the secret's digest.
func noExportOf(t *testing.T, r *coreRig, secret string) {
	t.Helper()
	d := sha256.Sum256([]byte(secret))
	digest := wire.FormatHash(d)
	recs := r.records(t)
	if n := len(recs[custody.TypeExport]); n != 0 {
		t.Fatalf("%d export records journaled: %v", n, recs[custody.TypeExport])
	}
	for seq := range r.j.Size() {
		raw, err := r.j.Record(seq)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(raw), digest) {
			t.Fatalf("record %d names the link target's digest: %s", seq, raw)
		}
	}
}

// refusedUnsafe wants the pair in rejected/ with an unsafe_file error
// naming why, and its refusal journaled.
func refusedUnsafe(t *testing.T, r *coreRig, spoolDir, name, field, why string) {
	t.Helper()
	var d errDoc
	readJSON(t, filepath.Join(spoolDir, RejectedDir, name+ErrorSuffix), &d)
	if d.Error.Code != "unsafe_file" || d.Error.Field != field || !strings.Contains(d.Error.Message, why) || d.Journaled == nil {
		t.Fatalf("%s: error file %+v, want unsafe_file %s %q, journaled", name, d, field, why)
	}
	raw, rec, body := e2etest.RejectedRecord(t, r.j, d.Journaled.Seq)
	if rec.Type != custody.TypeExportRejected || !strings.Contains(body.Reason, why) || body.Digest != "" {
		t.Fatalf("%s: journaled %s", name, raw)
	}
	if _, err := os.Lstat(filepath.Join(spoolDir, name)); !os.IsNotExist(err) {
		t.Fatalf("%s still in the spool folder: %v", name, err)
	}
}

// A pair whose data file is swapped for a symbolic link (or a hard link)
// to a file the writer cannot read, between the poll that saw a regular
// file and the open, is refused and the target is never journaled. The
// swap runs in the hook between scan and open, so the race is won every
// time.
func TestSpoolSwapBetweenScanAndOpen(t *testing.T) {
	for _, tc := range []struct {
		name, why string
		swap      func(t *testing.T, secret, path string)
	}{
		{"symlink", "symbolic link", func(t *testing.T, secret, path string) {
			tmp := path + ".swap.tmp"
			if err := os.Symlink(secret, tmp); err != nil {
				t.Fatal(err)
			}
			if err := os.Rename(tmp, path); err != nil {
				t.Fatal(err)
			}
		}},
		{"hardlink", "2 links", func(t *testing.T, secret, path string) {
			tmp := path + ".swap.tmp"
			if err := os.Link(secret, tmp); err != nil {
				t.Fatal(err)
			}
			if err := os.Rename(tmp, path); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			spoolDir := filepath.Join(dir, "spool")
			secret := writeSecret(t, dir)
			r := openCore(t, dir)
			w := newWatcher(t, spoolDir, CoreIngester(r.core))
			writePair(t, spoolDir, "inv.json", `{"no":"INV-1"}`, goodMeta)
			if st := scan(t, w); st.Waiting != 1 {
				t.Fatalf("first poll: %+v", st)
			}
			swapped := false
			beforeOpen = func(name string) {
				if name == "inv.json" && !swapped {
					swapped = true
					tc.swap(t, secret, filepath.Join(spoolDir, name))
				}
			}
			t.Cleanup(func() { beforeOpen = nil })
			if st := scan(t, w); !swapped || st.Rejected != 1 || st.Done != 0 {
				t.Fatalf("poll with the swap (swapped %v): %+v", swapped, st)
			}
			refusedUnsafe(t, r, spoolDir, "inv.json", "file", tc.why)
			noExportOf(t, r, secretInvoice)
		})
	}
}

// A regular file replaced by another between the poll and the open is not
// taken then (the descriptor is not what the poll saw); it is taken once
// it has been seen unchanged.
func TestSpoolReplacedBetweenScanAndOpen(t *testing.T) {
	dir := t.TempDir()
	spoolDir := filepath.Join(dir, "spool")
	r := openCore(t, dir)
	w := newWatcher(t, spoolDir, CoreIngester(r.core))
	writePair(t, spoolDir, "inv.json", `{"no":"INV-1"}`, goodMeta)
	scan(t, w)
	beforeOpen = func(name string) {
		beforeOpen = nil
		tmp := filepath.Join(spoolDir, ".new")
		write(t, tmp, `{"no":"INV-2"}`)
		if err := os.Rename(tmp, filepath.Join(spoolDir, name)); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() { beforeOpen = nil })
	if st := scan(t, w); st.Done != 0 || st.Rejected != 0 || st.Waiting != 1 {
		t.Fatalf("poll with the replacement: %+v", st)
	}
	if n := len(r.records(t)[custody.TypeExport]); n != 0 {
		t.Fatalf("%d exports journaled from a replaced file", n)
	}
	scan(t, w)
	if st := scan(t, w); st.Done != 1 {
		t.Fatalf("settled replacement: %+v", st)
	}
}

// Entries that are no regular file with one link, paired with a sidecar,
// are refused with a reason naming what they are, moved to rejected/
// unread, and their refusal journaled without any digest.
func TestSpoolUnsafeEntriesRefused(t *testing.T) {
	dir := t.TempDir()
	spoolDir := filepath.Join(dir, "spool")
	secret := writeSecret(t, dir)
	r := openCore(t, dir)
	w := newWatcher(t, spoolDir, CoreIngester(r.core))
	p := func(n string) string { return filepath.Join(spoolDir, n) }
	if err := os.Symlink(secret, p("link.json")); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(secret, p("hard.json")); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(p("fifo.json"), 0o640); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(p("dir.json"), 0o750); err != nil {
		t.Fatal(err)
	}
	write(t, p("meta-link.json"), `{"no":"INV-5"}`)
	if err := os.Symlink(p("meta-link.json.real"), p("meta-link.json"+MetaSuffix)); err != nil {
		t.Fatal(err)
	}
	write(t, p("meta-link.json.real"), goodMeta)
	for _, n := range []string{"link.json", "hard.json", "fifo.json", "dir.json"} {
		write(t, p(n+MetaSuffix), goodMeta)
	}
	scan(t, w)
	if st := scan(t, w); st.Rejected != 5 || st.Done != 0 {
		t.Fatalf("%+v", st)
	}
	for name, why := range map[string]string{
		"link.json": "is a symbolic link", "hard.json": "has 2 links", "fifo.json": "is a FIFO", "dir.json": "is a directory",
	} {
		refusedUnsafe(t, r, spoolDir, name, "file", why)
	}
	refusedUnsafe(t, r, spoolDir, "meta-link.json", "sidecar", "is a symbolic link")
	noExportOf(t, r, secretInvoice)
	// The links were moved, not their targets.
	if b, err := os.ReadFile(secret); err != nil || string(b) != secretInvoice {
		t.Fatalf("secret changed: %q %v", b, err)
	}
	if fi, err := os.Lstat(filepath.Join(spoolDir, RejectedDir, "link.json")); err != nil || fi.Mode().Type() != fs.ModeSymlink {
		t.Fatalf("rejected/link.json: %v %v", fi, err)
	}
}

// The spool folder's mode and group are applied at start; a
// world-writable mode, one without owner rwx, and an unknown group are
// refused.
func TestSpoolModeAndGroup(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "spool")
	gid := os.Getgid()
	newWatcher(t, dir, newFake(), func(o *Options) { o.Mode, o.Group = 0o770, strconv.Itoa(gid) })
	fi, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	if fi.Mode().Perm() != 0o770 || fi.Mode()&fs.ModeSetgid == 0 || int(st.Gid) != gid {
		t.Fatalf("spool folder mode %v gid %d, want drwxrws--- gid %d", fi.Mode(), st.Gid, gid)
	}
	for _, tc := range []struct {
		mode  fs.FileMode
		group string
		want  string
	}{
		{0o777, "", "world-writable"},
		{0o570, "", "owner"},
		{0o770, "no-such-group-edgeseal", "no such group"},
	} {
		_, err := New(Options{Dir: filepath.Join(t.TempDir(), "s"), Principal: spoolPrincipal, Ingester: newFake(), Mode: tc.mode, Group: tc.group})
		var ce *ConfigError
		if !errors.As(err, &ce) || !strings.Contains(ce.Reason, tc.want) {
			t.Errorf("mode %04o group %q: %v, want a ConfigError saying %q", uint32(tc.mode), tc.group, err, tc.want)
		}
	}
	// A spool folder that is a symbolic link is refused.
	real := t.TempDir()
	link := filepath.Join(t.TempDir(), "spool")
	if err := os.Symlink(real, link); err != nil {
		t.Fatal(err)
	}
	if _, err := New(Options{Dir: link, Principal: spoolPrincipal, Ingester: newFake()}); err == nil || !strings.Contains(err.Error(), "symbolic link") {
		t.Fatalf("spool folder as a symlink: %v", err)
	}
}

// A done/ swapped for a symbolic link is never written through: the pair
// stays in the spool folder and the link's target stays empty.
func TestSpoolDoneSwappedForLink(t *testing.T) {
	dir := t.TempDir()
	spoolDir := filepath.Join(dir, "spool")
	w := newWatcher(t, spoolDir, newFake())
	elsewhere := filepath.Join(dir, "elsewhere")
	if err := os.Mkdir(elsewhere, 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(spoolDir, DoneDir)); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(elsewhere, filepath.Join(spoolDir, DoneDir)); err != nil {
		t.Fatal(err)
	}
	writePair(t, spoolDir, "inv.json", `{"no":"INV-1"}`, goodMeta)
	scan(t, w)
	if _, err := w.Scan(t.Context()); err == nil || !strings.Contains(err.Error(), "open folder done") {
		t.Fatalf("scan with done/ a link: %v", err)
	}
	if ents, err := os.ReadDir(elsewhere); err != nil || len(ents) != 0 {
		t.Fatalf("written through the link: %v %v", ents, err)
	}
	if _, err := os.Lstat(filepath.Join(spoolDir, "inv.json")); err != nil {
		t.Fatalf("pair moved: %v", err)
	}
}
