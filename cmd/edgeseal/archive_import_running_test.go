package main

import (
	"bytes"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edgeseal/edgeseal/archive"
	"github.com/edgeseal/edgeseal/bundle/archivesig"
	"github.com/edgeseal/edgeseal/bundle/bundletest"
	"github.com/edgeseal/edgeseal/bundle/verify"
	"github.com/edgeseal/edgeseal/internal/e2etest"
)

// TestArchiveImportBesideRunningDaemon: with the archive daemon running
// in this process (archived.Run, which holds the archive's journals),
// `archive import --data-dir` of its data dir goes through the daemon's
// import request folder: the good bundles print accepted and their
// receipts written to the medium verify, the tampered one prints REFUSED
// naming its file and the failed check (exit 1), and the same medium
// again prints duplicate for the good ones; the request folder is left
// empty.
func TestArchiveImportBesideRunningDaemon(t *testing.T) {
	ar := e2etest.StartEmbeddedArchive(t)
	c, err := bundletest.NewChain(t.Context(), nil, 3, bundletest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	tr, err := c.Trust.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	req, err := archive.ParseEnrollRequest(tr)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ar.A.Devices().Enroll(t.Context(), req); err != nil {
		t.Fatal(err)
	}
	if _, err := ar.A.Devices().Approve(t.Context(), c.DeviceName(), c.Trust.KeyID, "test"); err != nil {
		t.Fatal(err)
	}
	bad, _, err := c.Tamper(t.Context(), bundletest.Case{Kind: "payload.changed", Target: 2, Prev: 1})
	if err != nil {
		t.Fatal(err)
	}
	media := t.TempDir()
	badName := bundletest.MustWriteMedia(t, media, append(c.Bundles[:2:2], bad)...)[2]
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	run := func() string {
		t.Helper()
		var out bytes.Buffer
		err := cmdArchiveImport(t.Context(), []string{media, "--data-dir", ar.DataDir, "--wait", "30s"}, &out, log)
		var ee *exitError
		if !errors.As(err, &ee) || ee.code != 1 {
			t.Fatalf("import: %v, want exit 1 (a bundle refused)\n%s\n%s", err, out.String(), ar.Logs)
		}
		return out.String()
	}
	out := run()
	dev := c.DeviceName()
	if !strings.Contains(out, "the archive daemon runs") || strings.Count(out, "  "+dev+"  accepted\n") != 2 ||
		!strings.Contains(out, badName+"  "+dev+"  REFUSED: ") || !strings.Contains(out, verify.CheckPayloadsDigest) ||
		!strings.Contains(out, "2 accepted, 1 refused (0 duplicate)") {
		t.Fatalf("import beside the daemon:\n%s", out)
	}
	paths, _ := filepath.Glob(filepath.Join(media, "receipts", "*.receipt.json"))
	if len(paths) != 2 {
		t.Fatalf("%d receipts on the medium", len(paths))
	}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if r, err := archivesig.VerifyReceipt(b, ar.A.KeyID(), ar.A.PublicKey()); err != nil || r.Device != dev {
			t.Fatalf("%s: %+v %v", p, r, err)
		}
	}
	out = run()
	if strings.Count(out, "  "+dev+"  duplicate\n") != 2 || !strings.Contains(out, "2 accepted, 1 refused (2 duplicate)") {
		t.Fatalf("the same medium again:\n%s", out)
	}
	// The daemon removes a request just after writing its answer.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		ents, err := os.ReadDir(archive.ImportRequestDir(ar.DataDir))
		if err != nil {
			t.Fatal(err)
		}
		if len(ents) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("left in the request folder: %v", ents)
		}
	}
}
