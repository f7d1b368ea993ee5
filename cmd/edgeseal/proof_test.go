package main

import (
	"crypto/sha256"
	"encoding/json"
	"net/http"
	"net/http/httptest"

	"bytes"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"github.com/edgeseal/edgeseal/bundle/proof"
	"github.com/edgeseal/edgeseal/bundle/wire"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/edgeseal/edgeseal/bundle/bundletest"
)

// TestProofEvidenceRefuse: links in place of a bundle or a receipts folder
// are refused without being followed, and bad usage exits 2.
func TestProofEvidenceRefuse(t *testing.T) {
	c := bundletest.MustChain(t, 1, bundletest.Options{})
	dir := t.TempDir()
	raw, err := c.Bundles[0].Bytes()
	if err != nil {
		t.Fatal(err)
	}
	real := filepath.Join(t.TempDir(), "real.bundle.tar")
	write := func(p string, b []byte) {
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(real, raw)
	tr, _ := c.Trust.Marshal()
	trust := filepath.Join(dir, "DEVICE.json")
	write(trust, tr)
	log := bundletest.MustArchiveLog(t)
	der, _ := x509.MarshalPKIXPublicKey(log.Pub)
	key := filepath.Join(dir, "archive.pub")
	write(key, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))

	links := filepath.Join(dir, "links")
	if err := os.MkdirAll(links, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(real, filepath.Join(links, "a.bundle.tar")); err != nil {
		t.Fatal(err)
	}
	media := filepath.Join(dir, "media")
	if err := os.MkdirAll(media, 0o755); err != nil {
		t.Fatal(err)
	}
	write(filepath.Join(media, "a.bundle.tar"), raw)
	if err := os.Symlink(t.TempDir(), filepath.Join(dir, "receipts-link")); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"proof", "exp-000001", "--bundles", links, "--trust", trust, "--archive-key", key}, "not a regular file"},
		{[]string{"proof", "exp-000001", "--bundles", filepath.Join(links, "a.bundle.tar"), "--trust", trust, "--archive-key", key}, "not a regular file"},
		{[]string{"proof", "exp-000001", "--bundles", media, "--receipts", filepath.Join(dir, "receipts-link"), "--trust", trust, "--archive-key", key}, "not a folder"},
		{[]string{"proof", "exp-000001", "exp-000002", "--bundles", media, "--trust", trust, "--archive-key", key}, "want one EXPORT-ID"},
		{[]string{"proof", "exp-000001", "--bundles", t.TempDir(), "--trust", trust, "--archive-key", key}, "no bundle (*.tar) in"},
		{[]string{"proof", "exp-000001", "--bundles", media, "--trust", trust}, "--archive-key"},
		{[]string{"proof", "exp-000001", "--bundles", media, "--trust", trust, "--archive-key", key}, "no archive receipt"},
		{[]string{"evidence", "--bundles", media, "--trust", trust, "--archive-key", key, "-o", filepath.Join(dir, "p")}, "want one of"},
		{[]string{"evidence", "--export", "x", "--case", "C", "--bundles", media, "-o", filepath.Join(dir, "p")}, "want one of"},
		{[]string{"evidence", "--case", "C", "--bundles", media, "--trust", trust, "--archive-key", key, "-o", filepath.Join(dir, "p")}, "--holds"},
	} {
		var out bytes.Buffer
		var err error
		if tc.args[0] == "proof" {
			err = cmdProof(t.Context(), tc.args[1:], &out)
		} else {
			err = cmdEvidence(t.Context(), tc.args[1:], &out)
		}
		var ee *exitError
		if !errors.As(err, &ee) || ee.code != 2 || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: %v, want exit 2 with %q", tc.args, err, tc.want)
		}
	}
}

// TestProofFromArchiveAPI: `proof --archive` finds the export in the read
// API's index, fetches the proof the archive builds (routes as
// docs/archive-api.md specifies them, served here by a stand-in; the real
// server is in e2e), and writes it only when it verifies pinned to the
// trust file and archive key: a proof carrying another trust file is
// refused (exit 1, nothing written). An id the index holds only as an
// export the agent refused is said to be refused (its export.rejected
// record and reason, exit 1), an id it does not hold not found.
func TestProofFromArchiveAPI(t *testing.T) {
	c := bundletest.MustChain(t, 2, bundletest.Options{})
	log := bundletest.MustArchiveLog(t)
	var raws, rcs [][]byte
	for _, b := range c.Bundles {
		raw, _ := b.Bytes()
		rc, err := log.Accept(b)
		if err != nil {
			t.Fatal(err)
		}
		raws, rcs = append(raws, raw), append(rcs, rc)
	}
	exps, err := proof.Exports(c.Bundles[1])
	if err != nil {
		t.Fatal(err)
	}
	e := exps[0]
	digest := wire.FormatHash(sha256.Sum256(raws[1]))
	trustRaw, _ := c.Trust.Marshal()
	served := trustRaw // the trust file the stand-in builds the proof with
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer s3cret" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		switch r.URL.Path {
		case "/v1/exports":
			if r.URL.Query().Get("status") == "refused" {
				_ = json.NewEncoder(w).Encode(map[string]any{"items": []map[string]any{{"device": e.Device, "export": "refused-1", "seq": 7,
					"type": "export.rejected", "status": "refused", "refusedBy": "agent", "reason": "policy: workflow not allowed",
					"principal": "mallory", "time": e.Time, "bundle": digest}}})
				return
			}
			_ = json.NewEncoder(w).Encode(map[string]any{"items": []map[string]any{{"device": e.Device, "export": e.ExportID, "seq": e.Seq,
				"type": "export", "status": "accepted", "principal": e.Principal, "time": e.Time, "bundle": digest}}})
		case "/v1/bundles/" + digest:
			_, _ = w.Write(raws[1])
		case "/v1/exports/" + e.Device + "/" + e.ExportID + "/proof":
			p, err := proof.Build(proof.Input{Bundle: raws[1], ExportID: e.ExportID, Principal: r.URL.Query().Get("principal"), Trust: served, Receipt: rcs[1], ArchiveKey: log.Pub})
			if err != nil {
				t.Error(err)
			}
			raw, _ := p.Marshal()
			_, _ = w.Write(raw)
		default:
			w.WriteHeader(http.StatusNotFound)
		}
	}))
	defer srv.Close()
	dir := t.TempDir()
	tr, _ := c.Trust.Marshal()
	der, _ := x509.MarshalPKIXPublicKey(log.Pub)
	files := map[string][]byte{"DEVICE.json": tr, "archive.pub": pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), "token": []byte("s3cret\n")}
	for n, b := range files {
		if err := os.WriteFile(filepath.Join(dir, n), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	out := filepath.Join(dir, "p.json")
	var buf bytes.Buffer
	err = cmdProof(t.Context(), []string{e.ExportID, "--archive", srv.URL, "--token-file", filepath.Join(dir, "token"),
		"--trust", filepath.Join(dir, "DEVICE.json"), "--archive-key", filepath.Join(dir, "archive.pub"), "-o", out}, &buf)
	if err != nil {
		t.Fatalf("proof --archive: %v", err)
	}
	raw, _ := os.ReadFile(out)
	p, err := proof.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	if rep := proof.Verify(p, proof.Options{Trust: tr, ArchiveKey: der}); !rep.OK() {
		t.Fatalf("proof from the API: %v", rep.Failed())
	}
	err = cmdProof(t.Context(), []string{"nope", "--archive", srv.URL, "--token-file", filepath.Join(dir, "token"),
		"--trust", filepath.Join(dir, "DEVICE.json"), "--archive-key", filepath.Join(dir, "archive.pub")}, &buf)
	var ee *exitError
	if !errors.As(err, &ee) || ee.code != 1 || !errors.Is(err, proof.ErrNotFound) || strings.Contains(err.Error(), "refused") {
		t.Fatalf("unknown export from the API: %v", err)
	}
	// An export the agent refused is said to be refused, with the record
	// and its reason, not "not found".
	err = cmdProof(t.Context(), []string{"refused-1", "--archive", srv.URL, "--token-file", filepath.Join(dir, "token"),
		"--trust", filepath.Join(dir, "DEVICE.json"), "--archive-key", filepath.Join(dir, "archive.pub")}, &buf)
	var re *proof.RefusedError
	if !errors.As(err, &ee) || ee.code != 1 || !errors.As(err, &re) ||
		!strings.Contains(err.Error(), `export "refused-1" was refused by the agent`) ||
		!strings.Contains(err.Error(), "export.rejected record 7 of "+e.Device+", principal mallory") ||
		!strings.Contains(err.Error(), "policy: workflow not allowed") {
		t.Fatalf("refused export from the API: %v", err)
	}
	other := bundletest.MustChain(t, 1, bundletest.Options{})
	served, _ = other.Trust.Marshal()
	out2 := filepath.Join(dir, "p2.json")
	err = cmdProof(t.Context(), []string{e.ExportID, "--archive", srv.URL, "--token-file", filepath.Join(dir, "token"),
		"--trust", filepath.Join(dir, "DEVICE.json"), "--archive-key", filepath.Join(dir, "archive.pub"), "-o", out2}, &buf)
	if !errors.As(err, &ee) || ee.code != 1 || !strings.Contains(err.Error(), "does not verify") {
		t.Fatalf("a proof with another trust file: %v", err)
	}
	if _, err := os.Stat(out2); !os.IsNotExist(err) {
		t.Fatalf("a refused proof was written: %v", err)
	}
}
