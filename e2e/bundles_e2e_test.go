package e2e

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/edgeseal/edgeseal/agent"
	"github.com/edgeseal/edgeseal/archive"
	aconfig "github.com/edgeseal/edgeseal/archive/config"
	"github.com/edgeseal/edgeseal/bundle/archivesig"
	"github.com/edgeseal/edgeseal/bundle/custody"
	"github.com/edgeseal/edgeseal/bundle/wire"
	"github.com/edgeseal/edgeseal/sync"
	mediapkg "github.com/edgeseal/edgeseal/sync/media"
)

// bundlesCLI runs the built binary and returns its combined output and
// exit code.
func bundlesCLI(t *testing.T, args ...string) (string, int) {
	t.Helper()
	return cliEnv(t, nil, args...)
}

// airGapRounds starts the agent and runs rounds times two exports and a
// seal (POST /v1/seal); it returns the running agent. One process run:
// the simulated TPM's clock starts over when its process restarts, and the
// archive refuses a clock that goes back in the same boot.
func airGapRounds(t *testing.T, a *agentDir, rounds int) *agentProc {
	t.Helper()
	p := a.start(t, true)
	c := unixClient(a.socket)
	for i := range rounds {
		for k := range 2 {
			id := fmt.Sprintf("inv-%d-%d", i, k)
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
	return p
}

// agentEndState is what a stopped agent's journal holds.
type agentEndState struct {
	size     uint64
	types    map[string]int      // record type -> count
	delivery map[string][]string // bundle digest -> outbox ids of its delivery.receipt records
	outbox   []string
}

func readAgentEndState(t *testing.T, a *agentDir) agentEndState {
	t.Helper()
	ctx := context.Background()
	j := a.openJournal(t)
	defer j.Close()
	st := agentEndState{size: j.Size(), types: map[string]int{}, delivery: map[string][]string{}}
	err := j.Records(ctx, 0, j.Size(), func(_ uint64, rec []byte) error {
		r, err := custody.ParseRecord(rec)
		if err != nil {
			return err
		}
		st.types[r.Type]++
		if r.Type == custody.TypeDeliveryReceipt {
			var b agent.DeliveryBody
			if err := json.Unmarshal(r.Body, &b); err != nil {
				return err
			}
			st.delivery[b.Bundle] = append(st.delivery[b.Bundle], b.Outbox)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := j.Outbox(ctx, func(id string, _ []byte) error { st.outbox = append(st.outbox, id); return nil }); err != nil {
		t.Fatal(err)
	}
	return st
}

// archiveEndState opens a stopped archive: its log size and whether it
// stores each digest.
func archiveEndState(t *testing.T, dir string, digests []string) (uint64, map[string]bool) {
	t.Helper()
	key, _, err := loadOrCreateArchiveKey(filepath.Join(dir, "archive.key"))
	if err != nil {
		t.Fatal(err)
	}
	c := aconfig.Default()
	a, err := archive.Open(context.Background(), archive.Options{Dir: dir, Key: key, Name: c.Name, Retention: c.Retention, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	has := map[string]bool{}
	for _, s := range digests {
		d, err := wire.ParseHash(s)
		if err != nil {
			t.Fatal(err)
		}
		if has[s], err = a.Objects().Has(context.Background(), d); err != nil {
			t.Fatal(err)
		}
	}
	return a.LogSize(), has
}

// enrollFile writes the agent's DEVICE.json with `tpm enroll`.
func enrollFile(t *testing.T, a *agentDir) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "DEVICE.json")
	if o, code := bundlesCLI(t, "tpm", "enroll", "--insecure-simulator", "--tpm", "simulator:"+filepath.Join(a.dir, "sim"),
		"--state", filepath.Join(a.dir, "data", "tpm"), "--site", "e2e-site", "--device", "dev-1", "--out", out); code != 0 {
		t.Fatalf("tpm enroll: exit %d\n%s", code, o)
	}
	return out
}

// TestBundlesAirGap: an agent without a broker seals bundles; `bundles
// export` writes them to a folder, `archive import` takes them and writes
// receipts, `bundles import-receipts` brings those back. The end state is
// the one MQTT delivery reaches (same record types, outbox empty, one
// delivery record per bundle, the archive log holding each bundle once),
// and doing it all again changes nothing.
func TestBundlesAirGap(t *testing.T) {
	needAgent(t)
	const rounds = 3
	a := newAgentDir(t, agentOpts{sealEvery: 1000, sealInterval: "1h", maxBody: "64 KiB"})
	cfg := filepath.Join(a.dir, "agent.yaml")
	media := t.TempDir()
	p := airGapRounds(t, a, rounds)
	out, code := bundlesCLI(t, "bundles", "export", "--config", cfg, "--to", media)
	if code != 1 || !strings.Contains(out, "locked by a running agent") || !strings.Contains(out, "stop the agent") {
		t.Fatalf("export while the agent runs: exit %d\n%s", code, out)
	}
	p.stop() // nothing to seal: only the last seal's own record is pending
	before := readAgentEndState(t, a)
	bundles := rounds
	if len(before.outbox) != bundles {
		t.Fatalf("outbox %v, want %d bundles", before.outbox, bundles)
	}

	// Export: every outbox bundle, and the index.
	out, code = bundlesCLI(t, "bundles", "export", "--config", cfg, "--to", media)
	if code != 0 || !strings.Contains(out, fmt.Sprintf("%d bundle(s)", bundles)) {
		t.Fatalf("bundles export: exit %d\n%s", code, out)
	}
	t.Logf("bundles export:\n%s", out)
	var idx mediapkg.Index
	if raw, err := os.ReadFile(filepath.Join(media, mediapkg.IndexFile)); err != nil || json.Unmarshal(raw, &idx) != nil {
		t.Fatalf("index: %v", err)
	}
	if idx.Device != "e2e-site/dev-1" || len(idx.Bundles) != bundles {
		t.Fatalf("index %+v", idx)
	}
	var digests []string
	for i, b := range idx.Bundles {
		raw, err := os.ReadFile(filepath.Join(media, b.File))
		if err != nil {
			t.Fatal(err)
		}
		if b.ID != before.outbox[i] || b.File != b.ID+".bundle.tar" || b.Size != int64(len(raw)) ||
			b.Bundle != wire.FormatHash(sha256.Sum256(raw)) || b.CheckpointSize == 0 {
			t.Fatalf("index entry %d: %+v", i, b)
		}
		digests = append(digests, b.Bundle)
	}
	if st := readAgentEndState(t, a); st.size != before.size || len(st.outbox) != bundles {
		t.Fatalf("export changed the journal: %d -> %d records, outbox %v", before.size, st.size, st.outbox)
	}

	// The archive: enroll and approve the device, import the folder.
	adata := t.TempDir()
	dev := enrollFile(t, a)
	if out, code := bundlesCLI(t, "archive", "enroll-file", dev, "--data-dir", adata); code != 0 {
		t.Fatalf("enroll-file: exit %d\n%s", code, out)
	}
	if out, code := bundlesCLI(t, "archive", "devices", "approve", "e2e-site/dev-1", "--key", keyIDOf(t, dev), "--no-activation", "--data-dir", adata); code != 0 {
		t.Fatalf("approve: exit %d\n%s", code, out)
	}
	if out, code := bundlesCLI(t, "archive", "import", media, "--data-dir", adata); code != 0 || !strings.Contains(out, fmt.Sprintf("%d accepted, 0 refused", bundles)) {
		t.Fatalf("archive import: exit %d\n%s", code, out)
	}
	receiptFiles := func() map[string][]byte {
		m := map[string][]byte{}
		paths, _ := filepath.Glob(filepath.Join(media, mediapkg.ReceiptsDir, "*.json"))
		for _, p := range paths {
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			m[filepath.Base(p)] = b
		}
		return m
	}
	firstReceipts := receiptFiles()
	if len(firstReceipts) != bundles {
		t.Fatalf("%d answers in receipts/, want %d", len(firstReceipts), bundles)
	}

	// A signed rejection is reported loudly and the bundle stays; once the
	// bundle is delivered, the same rejection is only superseded.
	akey, _, err := loadOrCreateArchiveKey(filepath.Join(adata, "archive.key"))
	if err != nil {
		t.Fatal(err)
	}
	rejected := t.TempDir()
	rej, err := sync.SignRejection(&sync.Rejection{BundleDigest: digests[0], Device: "e2e-site/dev-1", Reason: "test: refused",
		Checks: []string{"archive.gap"}, Time: time.Now().UTC().Format(time.RFC3339)}, archive.KeyID(akey.Public().(ed25519.PublicKey)), akey)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(rejected, mediapkg.ReceiptsDir), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(rejected, mediapkg.ReceiptsDir, "x.bundle.rejection.json"), rej, 0o644); err != nil {
		t.Fatal(err)
	}
	pubFile := filepath.Join(adata, "archive.key.pub")
	out, code = bundlesCLI(t, "bundles", "import-receipts", "--config", cfg, "--archive-key", pubFile, rejected)
	if code != 1 || !strings.Contains(out, "REJECTED by the archive: test: refused") || !strings.Contains(out, fmt.Sprintf("1 rejected, 0 superseded rejection(s), 0 bad; %d bundle(s) left", bundles)) {
		t.Fatalf("import-receipts of a rejection: exit %d\n%s", code, out)
	}

	// Without the archive key, import-receipts is a usage error.
	if out, code := bundlesCLI(t, "bundles", "import-receipts", "--config", cfg, media); code != 2 || !strings.Contains(out, "--archive-key") {
		t.Fatalf("import-receipts without a key: exit %d\n%s", code, out)
	}
	out, code = bundlesCLI(t, "bundles", "import-receipts", "--config", cfg, "--archive-key", pubFile, media)
	if code != 0 || !strings.Contains(out, fmt.Sprintf("%d delivered, 0 already delivered, 0 rejected", bundles)) {
		t.Fatalf("import-receipts: exit %d\n%s", code, out)
	}
	t.Logf("bundles import-receipts:\n%s", out)
	gap := readAgentEndState(t, a)
	logSize, stored := archiveEndState(t, adata, digests)
	checkDelivered := func(name string, st agentEndState, logSize uint64, stored map[string]bool) {
		t.Helper()
		if len(st.outbox) != 0 {
			t.Fatalf("%s: outbox still holds %v", name, st.outbox)
		}
		if st.types[custody.TypeDeliveryReceipt] != st.types[custody.TypeSeal] || len(st.delivery) != st.types[custody.TypeSeal] {
			t.Fatalf("%s: %d seals, %d delivery records for %d bundles", name, st.types[custody.TypeSeal], st.types[custody.TypeDeliveryReceipt], len(st.delivery))
		}
		for d, ids := range st.delivery {
			if len(ids) != 1 || !stored[d] {
				t.Fatalf("%s: bundle %s: delivery records %v, stored at the archive %v", name, d, ids, stored[d])
			}
		}
		if logSize != uint64(st.types[custody.TypeSeal]) {
			t.Fatalf("%s: archive log size %d for %d bundles", name, logSize, st.types[custody.TypeSeal])
		}
	}
	checkDelivered("air gap", gap, logSize, stored)
	if gap.types[custody.TypeSeal] != bundles {
		t.Fatalf("air gap: %d seals, want %d", gap.types[custody.TypeSeal], bundles)
	}

	// Everything again: the archive answers with receipts of the same
	// log entries (the stored ones; the first bundle's, which has no
	// witness proof, fresh) and stores nothing new; the agent has
	// nothing to export and nothing to journal.
	if out, code := bundlesCLI(t, "archive", "import", media, "--data-dir", adata); code != 0 || !strings.Contains(out, fmt.Sprintf("%d accepted, 0 refused", bundles)) {
		t.Fatalf("archive import again: exit %d\n%s", code, out)
	}
	if again := receiptFiles(); !maps.EqualFunc(again, firstReceipts, sameLogEntry) {
		t.Fatalf("a second import answered differently")
	}
	out, code = bundlesCLI(t, "bundles", "import-receipts", "--config", cfg, "--archive-key", pubFile, media)
	if code != 0 || !strings.Contains(out, fmt.Sprintf("0 delivered, %d already delivered", bundles)) {
		t.Fatalf("import-receipts again: exit %d\n%s", code, out)
	}
	if out, code := bundlesCLI(t, "bundles", "export", "--config", cfg, "--to", t.TempDir()); code != 0 || !strings.Contains(out, "0 bundle(s)") {
		t.Fatalf("export after delivery: exit %d\n%s", code, out)
	}
	if st := readAgentEndState(t, a); st.size != gap.size || !maps.Equal(st.types, gap.types) {
		t.Fatalf("a second import changed the journal: %d -> %d records", gap.size, st.size)
	}
	if n, stored2 := archiveEndState(t, adata, digests); n != logSize || !maps.Equal(stored, stored2) {
		t.Fatalf("a second import changed the archive log: %d -> %d", logSize, n)
	}

	if out, code := bundlesCLI(t, "bundles", "import-receipts", "--config", cfg, "--archive-key", pubFile, rejected); code != 0 || !strings.Contains(out, "0 rejected, 1 superseded") {
		t.Fatalf("import-receipts of a superseded rejection: exit %d\n%s", code, out)
	}

	// Receipts under another archive key are refused loudly and change
	// nothing.
	otherDir := t.TempDir()
	if _, _, err := loadOrCreateArchiveKey(filepath.Join(otherDir, "other.key")); err != nil {
		t.Fatal(err)
	}
	if out, code := bundlesCLI(t, "bundles", "import-receipts", "--config", cfg, "--archive-key", filepath.Join(otherDir, "other.key.pub"), media); code != 1 || strings.Count(out, "BAD") != bundles {
		t.Fatalf("import-receipts under another key: exit %d\n%s", code, out)
	}
	if st := readAgentEndState(t, a); st.size != gap.size {
		t.Fatalf("bad receipts changed the journal: %d -> %d records", gap.size, st.size)
	}

	// The same scenario over MQTT, for the end state to compare with.
	mq := mqttDelivery(t, rounds)
	mqLog := mq.logSize
	checkDelivered("mqtt", mq.state, mqLog, mq.stored)
	if !slices.Equal(slices.Sorted(maps.Keys(mq.state.types)), slices.Sorted(maps.Keys(gap.types))) {
		t.Fatalf("record types: mqtt %v, air gap %v", mq.state.types, gap.types)
	}
	t.Logf("end state: air gap %v, archive log %d; mqtt %v, archive log %d", gap.types, logSize, mq.state.types, mqLog)
	if mqLog != logSize {
		t.Fatalf("archive log size: mqtt %d, air gap %d", mqLog, logSize)
	}
}

type mqttEnd struct {
	state   agentEndState
	logSize uint64
	stored  map[string]bool
}

// mqttDelivery runs the rounds of TestBundlesAirGap with the agent syncing
// to an archive daemon (embedded broker, its own process), waits until the
// outbox drained, and returns the end state.
func mqttDelivery(t *testing.T, rounds int) mqttEnd {
	t.Helper()
	adir := t.TempDir()
	acfg := writeArchiveConfig(t, adir, "", "")
	a := newAgentDir(t, agentOpts{sealEvery: 1000, sealInterval: "1h", maxBody: "64 KiB"})
	enrollDevices(t, acfg, enrollFile(t, a))
	r := startArchiveProc(t, acfg)
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			r.stop(t)
		}
	}
	defer stop()
	appendFile(t, filepath.Join(a.dir, "agent.yaml"), fmt.Sprintf("sync:\n  broker: %s\n  archive_key: %s\n", r.broker, r.keyFile+".pub"))
	// Wait until the outbox drained, and kill the agent: a clean stop
	// would seal the delivery records journaled since, a bundle the air-gap
	// run does not have.
	p := airGapRounds(t, a, rounds)
	c := unixClient(a.socket)
	deadline := time.Now().Add(60 * time.Second)
	for {
		rep, err := do(t, c, "GET", "http://agent/v1/status", tokAuditor, "", nil)
		var st agent.Status
		if err == nil && rep.status == http.StatusOK && json.Unmarshal(rep.body, &st) == nil && st.Outbox == 0 && r.stats(t).LogSize == uint64(rounds) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("outbox not drained over MQTT within 60s: %d %s %v\n%s", rep.status, rep.body, err, p.stderr)
		}
		time.Sleep(50 * time.Millisecond)
	}
	p.kill()
	stop()
	st := readAgentEndState(t, a)
	var digests []string
	for d := range st.delivery {
		digests = append(digests, d)
	}
	n, stored := archiveEndState(t, filepath.Join(adir, "data"), digests)
	return mqttEnd{state: st, logSize: n, stored: stored}
}

// sameLogEntry reports whether two answers to one bundle are the same,
// or receipts of the same archive log entry (a repeat may get a fresh
// receipt: docs/formats.md, Receipts).
func sameLogEntry(a, b []byte) bool {
	if bytes.Equal(a, b) {
		return true
	}
	_, ra, err1 := archivesig.ParseReceipt(a)
	_, rb, err2 := archivesig.ParseReceipt(b)
	return err1 == nil && err2 == nil && ra.LogIndex == rb.LogIndex && ra.BundleDigest == rb.BundleDigest &&
		ra.CheckpointSize == rb.CheckpointSize && ra.CheckpointRoot == rb.CheckpointRoot
}
