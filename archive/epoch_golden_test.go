package archive_test

import (
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/edgeseal/edgeseal/archive"
	"github.com/edgeseal/edgeseal/bundle"
	"github.com/edgeseal/edgeseal/sync"
)

var updateGolden = flag.Bool("update", false, "rewrite the golden files under testdata/")

// hashes are replaced in golden files: key ids and digests differ on
// every run (fresh software TPMs).
var hashes = regexp.MustCompile(`sha256:[0-9a-f]{64}|[A-Za-z0-9+/]{43}=`)

// golden compares the signed wire rejection reply (what the device reads)
// with testdata/rejections/<name>.golden, key ids and digests numbered in
// order of appearance.
func golden(t *testing.T, e *env, name string, reply []byte) {
	t.Helper()
	rj, err := sync.VerifyRejection(reply, e.a.KeyID(), e.a.PublicKey())
	if err != nil {
		t.Fatal(err)
	}
	text := "checks: " + strings.Join(rj.Checks, " ") + "\nreason: " + rj.Reason + "\n"
	seen := map[string]string{}
	text = hashes.ReplaceAllStringFunc(text, func(h string) string {
		if _, ok := seen[h]; !ok {
			seen[h] = "<" + string(rune('A'+len(seen))) + ">"
		}
		return seen[h]
	})
	path := filepath.Join("testdata", "rejections", name+".golden")
	if *updateGolden {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to write it)", err)
	}
	if text != string(want) {
		t.Fatalf("rejection %s:\n%s\nwant (%s):\n%s", name, text, path, want)
	}
}

// TestRekeyRejectionsGolden pins the refusals a rekey is about: the new
// key before the rekey (the command to run), the old key after it (the
// checkpoint its epoch was closed at).
func TestRekeyRejectionsGolden(t *testing.T) {
	r := newRekeyed(t)
	e, ctx := r.e, t.Context()
	send := func(site, dev string, b *bundle.Bundle) []byte {
		t.Helper()
		reply, err := e.a.Receive(ctx, site, dev, raw(t, b))
		if _, ok := err.(*archive.RejectedError); !ok {
			t.Fatalf("not refused: %v", err)
		}
		return reply
	}
	golden(t, e, "unknown-key", send(r.fresh.Opts.Site, r.fresh.Opts.Device, r.fresh.Bundles[0]))
	e.enroll(r.fresh)
	golden(t, e, "rekey-pending", send(r.fresh.Opts.Site, r.fresh.Opts.Device, r.fresh.Bundles[0]))
	if _, err := e.a.Rekey(ctx, r.old.DeviceName(), r.fresh.Trust.KeyID, "alice", "board replaced"); err != nil {
		t.Fatal(err)
	}
	late, err := r.old.Next(ctx, 4)
	if err != nil {
		t.Fatal(err)
	}
	golden(t, e, "epoch-closed", send(r.old.Opts.Site, r.old.Opts.Device, late))
}
