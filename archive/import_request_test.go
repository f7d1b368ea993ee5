package archive_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/edgeseal/edgeseal/archive"
	"github.com/edgeseal/edgeseal/bundle"
	"github.com/edgeseal/edgeseal/bundle/bundletest"
	"github.com/edgeseal/edgeseal/bundle/verify"
	"github.com/edgeseal/edgeseal/sync"
)

// importAnswer queues raw as request id for the running archive e.a and
// waits for its answer.
func importAnswer(t *testing.T, e *env, id string, raw []byte) *archive.ImportAnswer {
	t.Helper()
	if raw != nil {
		if err := archive.RequestImport(e.dir, id, raw); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	an, err := archive.WaitImport(ctx, e.dir, id, 10*time.Millisecond)
	if err != nil {
		t.Fatalf("request %s: %v", id, err)
	}
	// The answer is written before the request is removed.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		_, err := os.Lstat(filepath.Join(archive.ImportRequestDir(e.dir), id+".bundle"))
		if os.IsNotExist(err) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("request %s still queued after its answer: %v", id, err)
		}
	}
	return an
}

// TestImportRequestRunning: bundles handed to the running archive
// through its import request folder (as `archive import` does while the
// daemon holds the archive) are taken without a reopen while another
// device's bundles keep arriving through Receive (the MQTT path): each is
// accepted with a receipt that verifies, the same bundle again answers
// duplicate with a receipt that verifies, and a tampered one is refused
// with a signed rejection naming the check that caught it.
func TestImportRequestRunning(t *testing.T) {
	e := newEnv(t)
	live := newChain(t, 4, bundletest.Options{Site: "site2", Device: "live"})
	media := newChain(t, 3, bundletest.Options{Site: "site1", Device: "air"})
	e.approve(live)
	e.approve(media)

	// The other device delivers meanwhile.
	delivered := make(chan error, 1)
	go func() {
		for _, b := range live.Bundles {
			if _, err := e.a.Receive(context.Background(), live.Opts.Site, live.Opts.Device, raw(t, b)); err != nil {
				delivered <- err
				return
			}
		}
		delivered <- nil
	}()

	for i, b := range media.Bundles[:2] {
		data := raw(t, b)
		an := importAnswer(t, e, "100-000"+string(rune('1'+i)), data)
		if an.Outcome != archive.ImportAccepted || an.Device != "site1/air" {
			t.Fatalf("bundle %d: %+v", i, an)
		}
		e.checkReceipt(an.Reply, data, media.DeviceName())
	}
	data := raw(t, media.Bundles[0])
	an := importAnswer(t, e, "200-0001", data)
	if an.Outcome != archive.ImportDuplicate {
		t.Fatalf("the same bundle again: %+v", an)
	}
	e.checkReceipt(an.Reply, data, media.DeviceName())

	bad, _, err := media.Tamper(t.Context(), bundletest.Case{Kind: "payload.changed", Target: 2, Prev: 1})
	if err != nil {
		t.Fatal(err)
	}
	an = importAnswer(t, e, "300-0001", raw(t, bad))
	if an.Outcome != archive.ImportRefused || !strings.Contains(an.Error, verify.CheckPayloadsDigest) {
		t.Fatalf("tampered bundle: %+v", an)
	}
	if rj, err := sync.VerifyRejection(an.Reply, e.a.KeyID(), e.a.PublicKey()); err != nil || !strings.Contains(strings.Join(rj.Checks, ","), verify.CheckPayloadsDigest) {
		t.Fatalf("signed rejection %+v: %v", rj, err)
	}
	if err := <-delivered; err != nil {
		t.Fatalf("delivery beside the import: %v", err)
	}
	if st := e.a.Stats(); st.Accepted != uint64(len(live.Bundles)+2) {
		t.Fatalf("stats %+v", st)
	}
}

// TestImportRequestRefusesEntries: a request entry that is a symbolic
// link (to a good bundle), larger than an import reads or a FIFO is not
// taken:
// answered request-refused with the reason, the entry removed (the
// link, never its target), nothing accepted.
func TestImportRequestRefusesEntries(t *testing.T) {
	e := newEnv(t)
	c := newChain(t, 1, bundletest.Options{})
	e.approve(c)
	d := archive.ImportRequestDir(e.dir)
	if err := os.MkdirAll(d, 0o750); err != nil {
		t.Fatal(err)
	}
	target := filepath.Join(t.TempDir(), "good.tar")
	if err := os.WriteFile(target, raw(t, c.Bundles[0]), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, filepath.Join(d, "1-0001.bundle")); err != nil {
		t.Fatal(err)
	}
	an := importAnswer(t, e, "1-0001", nil)
	if an.Outcome != archive.ImportRequestRefused || !strings.Contains(an.Error, "symbolic link") || an.Reply != nil {
		t.Fatalf("link: %+v", an)
	}
	if _, err := os.Stat(target); err != nil {
		t.Fatalf("the link's target: %v", err)
	}

	big := make([]byte, archive.ImportReadLimit(bundle.DefaultLimits)+1)
	if err := archive.RequestImport(e.dir, "2-0001", big); err != nil {
		t.Fatal(err)
	}
	an = importAnswer(t, e, "2-0001", nil)
	if an.Outcome != archive.ImportRequestRefused || !strings.Contains(an.Error, "larger than") {
		t.Fatalf("oversize: %+v", an)
	}
	// A FIFO is refused without blocking the daemon on its open.
	if err := syscall.Mkfifo(filepath.Join(d, "3-0001.bundle"), 0o640); err != nil {
		t.Fatal(err)
	}
	an = importAnswer(t, e, "3-0001", nil)
	if an.Outcome != archive.ImportRequestRefused || !strings.Contains(an.Error, "not a regular file") {
		t.Fatalf("fifo: %+v", an)
	}
	if err := archive.RequestImport(e.dir, "../x", []byte("x")); err == nil {
		t.Fatal("a request id with a path queued")
	}
	if st := e.a.Stats(); st.Accepted != 0 || st.Refused != 0 {
		t.Fatalf("stats %+v", st)
	}
}

// FuzzWaitImport: whatever bytes an answer file holds, WaitImport returns
// an answer of version 1 (and removes the file) or an error; it never
// panics nor waits.
func FuzzWaitImport(f *testing.F) {
	f.Add([]byte(`{"v":1,"outcome":"accepted","device":"s/d","reply":"e30="}`))
	f.Add([]byte(`{"v":2,"outcome":"accepted"}`))
	f.Add([]byte(`{"v":1,"reply":"not base64"}`))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		dir := t.TempDir()
		d := archive.ImportRequestDir(dir)
		if err := os.MkdirAll(d, 0o750); err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(d, "1-1.answer.json")
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		an, err := archive.WaitImport(ctx, dir, "1-1", time.Millisecond)
		if err != nil {
			if errors.Is(err, context.Canceled) {
				t.Fatalf("waited on an answer that is there: %v", err)
			}
			return
		}
		if an.V != 1 {
			t.Fatalf("answer of version %d", an.V)
		}
		if _, err := os.Lstat(p); !os.IsNotExist(err) {
			t.Fatalf("answer file left: %v", err)
		}
	})
}
