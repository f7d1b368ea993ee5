package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/edgeseal/edgeseal/archive"
	aconfig "github.com/edgeseal/edgeseal/archive/config"
	"github.com/edgeseal/edgeseal/archive/tlog"
	"github.com/edgeseal/edgeseal/bundle/archivesig"
	"github.com/edgeseal/edgeseal/bundle/custody"
	"github.com/edgeseal/edgeseal/bundle/witness"
	mediapkg "github.com/edgeseal/edgeseal/sync/media"
)

// witnessDevice is an agent of device e2e-site/<name> and its trust file.
type witnessDevice struct {
	*agentDir
	name  string // "dev-1"
	trust string // DEVICE.json
}

// newWitnessDevice is newAgentDir for device name, enrolled (tpm enroll).
func newWitnessDevice(t *testing.T, name string) *witnessDevice {
	t.Helper()
	a := newAgentDir(t, agentOpts{sealEvery: 1000, sealInterval: "1h", maxBody: "64 KiB"})
	cfg := filepath.Join(a.dir, "agent.yaml")
	raw, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfg, []byte(strings.Replace(string(raw), "device: dev-1\n", "device: "+name+"\n", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	trust := filepath.Join(t.TempDir(), "DEVICE.json")
	if o, code := bundlesCLI(t, "tpm", "enroll", "--insecure-simulator", "--tpm", "simulator:"+filepath.Join(a.dir, "sim"),
		"--state", filepath.Join(a.dir, "data", "tpm"), "--site", "e2e-site", "--device", name, "--out", trust); code != 0 {
		t.Fatalf("tpm enroll %s: exit %d\n%s", name, code, o)
	}
	return &witnessDevice{agentDir: a, name: name, trust: trust}
}

func (d *witnessDevice) config() string { return filepath.Join(d.dir, "agent.yaml") }

// export writes the stopped agent's outbox to dir (created) and returns
// the index.
func (d *witnessDevice) export(t *testing.T, dir string) mediapkg.Index {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, code := bundlesCLI(t, "bundles", "export", "--config", d.config(), "--to", dir); code != 0 {
		t.Fatalf("bundles export %s: exit %d\n%s", d.name, code, out)
	}
	var idx mediapkg.Index
	if raw, err := os.ReadFile(filepath.Join(dir, mediapkg.IndexFile)); err != nil || json.Unmarshal(raw, &idx) != nil {
		t.Fatalf("index of %s: %v", dir, err)
	}
	return idx
}

// importReceipts runs bundles import-receipts of the receipts in media
// for the bundles ids (all when none) and returns its output and exit.
func (d *witnessDevice) importReceipts(t *testing.T, pub, media string, ids ...string) (string, int) {
	t.Helper()
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, mediapkg.ReceiptsDir), 0o755); err != nil {
		t.Fatal(err)
	}
	paths, _ := filepath.Glob(filepath.Join(media, mediapkg.ReceiptsDir, "*"+mediapkg.ReceiptSuffix))
	n := 0
	for _, p := range paths {
		take := len(ids) == 0
		for _, id := range ids {
			take = take || strings.HasPrefix(filepath.Base(p), id+".")
		}
		if !take {
			continue
		}
		raw, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, mediapkg.ReceiptsDir, filepath.Base(p)), raw, 0o644); err != nil {
			t.Fatal(err)
		}
		n++
	}
	if n == 0 || (len(ids) > 0 && n != len(ids)) {
		t.Fatalf("%d receipts in %s for %v", n, media, ids)
	}
	return bundlesCLI(t, "bundles", "import-receipts", "--config", d.config(), "--archive-key", pub, dir)
}

// witnessRounds runs the agent for rounds of two exports (ids with
// prefix) and a seal each, then stops it.
func witnessRounds(t *testing.T, d *witnessDevice, prefix string, rounds int) {
	t.Helper()
	p := d.start(t, true)
	c := unixClient(d.socket)
	for i := range rounds {
		for k := range 2 {
			id := fmt.Sprintf("%s-%d-%d", prefix, i, k)
			body := fmt.Appendf(nil, `{"id":%q,"workflow":"invoices-daily","app":"n8n","classification":"internal","destination":"archive","data":%s}`,
				id, fmt.Sprintf(e2eInvoice, i*10+k))
			r, err := do(t, c, "POST", "http://agent/v1/exports", tokN8N, "application/json", body)
			if err != nil || r.status != http.StatusCreated {
				t.Fatalf("export %s: %d %s %v", id, r.status, r.body, err)
			}
		}
		r, err := do(t, c, "POST", "http://agent/v1/seal", tokOperator, "", nil)
		if err != nil || r.status/100 != 2 {
			t.Fatalf("seal: %d %s %v", r.status, r.body, err)
		}
	}
	p.stop()
}

// witnessArchive is an archive's data directory, used by the archive CLI
// (`edgeseal archive import`: one archive process per import).
type witnessArchive struct{ data string }

func (a witnessArchive) pub() string { return filepath.Join(a.data, "archive.key.pub") }

// enroll enrolls and approves the devices.
func (a witnessArchive) enroll(t *testing.T, devs ...*witnessDevice) {
	t.Helper()
	for _, d := range devs {
		if out, code := bundlesCLI(t, "archive", "enroll-file", d.trust, "--data-dir", a.data); code != 0 {
			t.Fatalf("enroll-file %s: exit %d\n%s", d.name, code, out)
		}
		if out, code := bundlesCLI(t, "archive", "devices", "approve", "e2e-site/"+d.name, "--key", keyIDOf(t, d.trust), "--no-activation", "--data-dir", a.data); code != 0 {
			t.Fatalf("approve %s: exit %d\n%s", d.name, code, out)
		}
	}
}

// importMedia imports a copy of media (so each archive writes its own
// receipts) and returns the copy.
func (a witnessArchive) importMedia(t *testing.T, media string, bundles int) string {
	t.Helper()
	cp := t.TempDir()
	if err := os.CopyFS(cp, os.DirFS(media)); err != nil {
		t.Fatal(err)
	}
	if out, code := bundlesCLI(t, "archive", "import", cp, "--data-dir", a.data); code != 0 || !strings.Contains(out, "accepted, 0 refused") {
		t.Fatalf("archive import into %s: exit %d\n%s", a.data, code, out)
	}
	if got, _ := filepath.Glob(filepath.Join(cp, mediapkg.ReceiptsDir, "*"+mediapkg.ReceiptSuffix)); len(got) != bundles {
		t.Fatalf("%d receipts from %s, want %d", len(got), a.data, bundles)
	}
	return cp
}

// mirror copies the stopped archive's log, as its /log/ tlog-tiles tree
// serves it (the archive's own handler), into a new folder: the
// checkpoint and every hash tile of its tree, fetched by their C2SP paths
// as a client would.
func (a witnessArchive) mirror(t *testing.T) string {
	t.Helper()
	key, _, err := loadOrCreateArchiveKey(filepath.Join(a.data, "archive.key"))
	if err != nil {
		t.Fatal(err)
	}
	c := aconfig.Default()
	ar, err := archive.Open(context.Background(), archive.Options{Dir: a.data, Key: key, Name: c.Name, Retention: c.Retention, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer ar.Close()
	srv := httptest.NewServer(tlog.Handler(ar.LogTiles(), slog.New(slog.DiscardHandler)))
	defer srv.Close()
	dir := t.TempDir()
	get := func(rel string) []byte {
		t.Helper()
		resp, err := http.Get(srv.URL + "/" + rel)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("GET /log/%s: %d %v", rel, resp.StatusCode, err)
		}
		p := filepath.Join(dir, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return b
	}
	cp, err := archivesig.NoteCheckpoint(string(get("checkpoint")))
	if err != nil {
		t.Fatal(err)
	}
	for level := uint64(0); level < 8 && cp.Size>>(8*level) > 0; level++ {
		n := cp.Size >> (8 * level)
		for i := range n / 256 {
			get(witness.TilePath(level, i, 256))
		}
		if n%256 > 0 {
			get(witness.TilePath(level, n/256, int(n%256)))
		}
	}
	return dir
}

// TestWitnessEquivocationE2E: an archive that keeps two stores under one
// key and origin (two archives, A and B, the second started from a copy
// of the first's key) shows device 1 one log and device 2 another. Device
// 1, shown B's receipt after A's, refuses it as a fork (import-receipts
// fails, says ALARM archive.inconsistent, the bundle stays in the outbox);
// `edgeseal verify archive` over both devices' bundles (their
// archive.checkpoint records) fails archive.fork naming both devices.
func TestWitnessEquivocationE2E(t *testing.T) {
	witnessRun(t, true)
}

// TestWitnessHonestArchiveE2E is the control: the same steps with one
// archive; every receipt is taken and verify archive finds nothing.
func TestWitnessHonestArchiveE2E(t *testing.T) {
	witnessRun(t, false)
}

func witnessRun(t *testing.T, equivocate bool) {
	needAgent(t)
	dev1, dev2 := newWitnessDevice(t, "dev-1"), newWitnessDevice(t, "dev-2")
	witnessRounds(t, dev1, "a", 3)
	witnessRounds(t, dev2, "a", 2)

	archA := witnessArchive{data: t.TempDir()}
	if _, _, err := loadOrCreateArchiveKey(filepath.Join(archA.data, "archive.key")); err != nil {
		t.Fatal(err)
	}
	archA.enroll(t, dev1, dev2)
	archB := archA
	if equivocate {
		// B: the same key (and so the same origin), its own store.
		archB = witnessArchive{data: t.TempDir()}
		raw, err := os.ReadFile(filepath.Join(archA.data, "archive.key"))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(archB.data, "archive.key"), raw, 0o600); err != nil {
			t.Fatal(err)
		}
		archB.enroll(t, dev1, dev2)
	}

	media1, media2 := t.TempDir(), t.TempDir()
	idx1 := dev1.export(t, media1)
	dev2.export(t, media2)
	if len(idx1.Bundles) != 3 {
		t.Fatalf("device 1 exported %d bundles", len(idx1.Bundles))
	}
	// B (or the one archive) logs device 2's two bundles, then device
	// 1's three; A logs only device 1's: at size 2 A holds device 1's
	// second bundle, B device 2's second.
	fromB2 := archB.importMedia(t, media2, 2)
	fromB1 := archB.importMedia(t, media1, 3)
	fromA1 := fromB1
	if equivocate {
		fromA1 = archA.importMedia(t, media1, 3)
	}
	pub := archA.pub()
	if out, code := dev2.importReceipts(t, pub, fromB2); code != 0 || !strings.Contains(out, "2 delivered") {
		t.Fatalf("device 2 import-receipts: exit %d\n%s", code, out)
	}
	b1, b2, b3 := idx1.Bundles[0].ID, idx1.Bundles[1].ID, idx1.Bundles[2].ID
	if !equivocate {
		if out, code := dev1.importReceipts(t, pub, fromA1); code != 0 || !strings.Contains(out, "3 delivered") || strings.Contains(out, "ALARM") {
			t.Fatalf("device 1 import-receipts: exit %d\n%s", code, out)
		}
	} else {
		// Device 1 takes A's receipts of its bundles 2 and 3 (A's
		// checkpoints 2 and 3), then is shown B's receipt of its bundle 1,
		// which B logged at size 3 under another root.
		for _, id := range []string{b2, b3} {
			if out, code := dev1.importReceipts(t, pub, fromA1, id); code != 0 || !strings.Contains(out, "1 delivered") {
				t.Fatalf("device 1 import-receipts of A's %s: exit %d\n%s", id, code, out)
			}
		}
		out, code := dev1.importReceipts(t, pub, fromB1, b1)
		if code == 0 || !strings.Contains(out, "ALARM archive.inconsistent") || !strings.Contains(out, "archive log inconsistent") {
			t.Fatalf("device 1 shown the fork: exit %d\n%s", code, out)
		}
		t.Logf("device 1 shown the fork:\n%s", out)
		if st := readAgentEndState(t, dev1.agentDir); len(st.outbox) != 1 || st.outbox[0] != b1 {
			t.Fatalf("the refused bundle left the outbox: %v", st.outbox)
		}
	}

	// Each device seals once more: its archive.checkpoint records go into
	// a bundle.
	witnessRounds(t, dev1, "b", 1)
	witnessRounds(t, dev2, "b", 1)
	for _, d := range []*witnessDevice{dev1, dev2} {
		if st := readAgentEndState(t, d.agentDir); st.types[custody.TypeArchiveCheckpoint] < 2 {
			t.Fatalf("%s journaled %d archive.checkpoint records", d.name, st.types[custody.TypeArchiveCheckpoint])
		}
	}
	auditor := t.TempDir()
	dev1.export(t, filepath.Join(auditor, "dev-1"))
	dev2.export(t, filepath.Join(auditor, "dev-2"))
	// The bundles delivered before the last seal are in the archives:
	// the auditor has the outbox (the new bundles); that is enough.
	out, code := runCmd(t, "verify", "archive", "--archive-key", pub, "--trust", dev1.trust, "--trust", dev2.trust, auditor)
	t.Logf("verify archive:\n%s", out)
	// With a copy of A's log (the one archive's, in the control) every
	// checkpoint is related to it: B's are not in it.
	logA := archA.mirror(t)
	outLog, codeLog := runCmd(t, "verify", "archive", "--archive-key", pub, "--log", logA, auditor)
	t.Logf("verify archive --log:\n%s", outLog)
	if !equivocate {
		if code != 0 || !strings.Contains(out, "no inconsistency found") || !strings.Contains(out, "2 device(s)") || !strings.Contains(out, "2 bundle(s) verified against") {
			t.Fatalf("verify archive of an honest archive: exit %d", code)
		}
		if codeLog != 0 || strings.Contains(outLog, "not related") || !strings.Contains(outLog, "5 checkpoint(s) are in the log") {
			t.Fatalf("verify archive --log of an honest archive: exit %d", codeLog)
		}
		return
	}
	if codeLog != 1 || !strings.Contains(outLog, "FAILED   archive.log") || !strings.Contains(outLog, "another root at size 1") ||
		!strings.Contains(outLog, "another root at size 2") || !strings.Contains(outLog, "seen by e2e-site/dev-2") {
		t.Fatalf("verify archive --log of an equivocating archive: exit %d", codeLog)
	}
	if code != 1 || !strings.Contains(out, "FAILED   archive.fork") || !strings.Contains(out, "two roots for size 2") ||
		!strings.Contains(out, "e2e-site/dev-1") || !strings.Contains(out, "e2e-site/dev-2") || !strings.Contains(out, "INCONSISTENT") ||
		!strings.Contains(out, "ok       devices.verified") {
		t.Fatalf("verify archive of an equivocating archive: exit %d", code)
	}
	// Each device's own view is consistent: the fork shows only across.
	for _, d := range []string{"dev-1", "dev-2"} {
		if out, code := runCmd(t, "verify", "archive", "--archive-key", pub, filepath.Join(auditor, d)); code != 0 {
			t.Fatalf("verify archive of %s alone: exit %d\n%s", d, code, out)
		}
	}
}
