package e2e

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/edgeseal/edgeseal/archive"
	aconfig "github.com/edgeseal/edgeseal/archive/config"
	"github.com/edgeseal/edgeseal/bundle/archivesig"
	"github.com/edgeseal/edgeseal/bundle/trustfile"
	"github.com/edgeseal/edgeseal/sync"
	mediapkg "github.com/edgeseal/edgeseal/sync/media"
)

// exportMedia writes a stopped agent's outbox to a new folder
// (`bundles export`) and returns it with the bundle files, in order.
func exportMedia(t *testing.T, a *agentDir) (string, []string) {
	t.Helper()
	media := t.TempDir()
	if out, code := bundlesCLI(t, "bundles", "export", "--config", filepath.Join(a.dir, "agent.yaml"), "--to", media); code != 0 {
		t.Fatalf("bundles export: exit %d\n%s", code, out)
	}
	files, err := filepath.Glob(filepath.Join(media, "*.bundle.tar"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no bundles exported: %v", err)
	}
	return media, files
}

func keyIDOf(t *testing.T, deviceJSON string) string {
	t.Helper()
	tr := readTrust(t, deviceJSON)
	return tr.KeyID
}

// answers reads the receipts or rejections archive import wrote.
func answers(t *testing.T, media, suffix string) [][]byte {
	t.Helper()
	paths, _ := filepath.Glob(filepath.Join(media, mediapkg.ReceiptsDir, "*"+suffix))
	var out [][]byte
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b)
	}
	return out
}

// TestRekeyAfterBoardSwap: a device seals bundles that the archive takes;
// then its board and disk are replaced (a new simulated TPM, keys created
// by `tpm enroll`, a new journal from size 0). Its new bundles are refused
// with the command to run; the operator enrolls the new key and runs
// `archive devices rekey`; the new journal is archived as epoch 2 from
// size 0, receipts naming it. The old epoch's bundles still verify and
// keep their receipts; an old-key bundle delivered after the rekey is
// refused naming the checkpoint its epoch was closed at.
func TestRekeyAfterBoardSwap(t *testing.T) {
	needAgent(t)
	const dev = "e2e-site/dev-1"
	adata := t.TempDir()
	arch := func(args ...string) (string, int) {
		t.Helper()
		return bundlesCLI(t, append(append([]string{"archive"}, args...), "--data-dir", adata)...)
	}

	// The first board: keys by `tpm enroll`, two bundles sealed; the
	// second stays on the site (delivered only after the rekey).
	a1 := newAgentDir(t, agentOpts{sealEvery: 1000, sealInterval: "1h", maxBody: "64 KiB"})
	dev1 := enrollFile(t, a1)
	key1 := keyIDOf(t, dev1)
	p := airGapRounds(t, a1, 2)
	p.stop()
	media1, files1 := exportMedia(t, a1)
	if len(files1) != 2 {
		t.Fatalf("first board: %d bundles exported, want 2", len(files1))
	}
	late := t.TempDir()
	if err := os.Rename(files1[1], filepath.Join(late, filepath.Base(files1[1]))); err != nil {
		t.Fatal(err)
	}
	if out, code := arch("enroll-file", dev1); code != 0 {
		t.Fatalf("enroll-file: exit %d\n%s", code, out)
	}
	if out, code := arch("devices", "approve", dev, "--key", key1, "--no-activation"); code != 0 {
		t.Fatalf("approve: exit %d\n%s", code, out)
	}
	if out, code := arch("import", media1); code != 0 || !strings.Contains(out, "1 accepted, 0 refused") {
		t.Fatalf("import of the first board's bundle: exit %d\n%s", code, out)
	}
	akey, apub, akid := archiveKeys(t, adata)
	first := answers(t, media1, ".receipt.json")
	r1, err := archivesig.VerifyReceipt(first[0], akid, apub)
	if err != nil || r1.Epoch != 0 || r1.LogIndex != 0 {
		t.Fatalf("first board's receipt: %+v %v", r1, err)
	}

	// The board and disk are replaced: a new TPM, new keys, a new journal.
	a2 := newAgentDir(t, agentOpts{sealEvery: 1000, sealInterval: "1h", maxBody: "64 KiB"})
	dev2 := enrollFile(t, a2)
	key2 := keyIDOf(t, dev2)
	if key2 == key1 {
		t.Fatal("the new board has the old key")
	}
	p = airGapRounds(t, a2, 1)
	p.stop()
	media2, _ := exportMedia(t, a2)
	rekeyCmd := "edgeseal archive devices rekey " + dev + " --key " + key2

	// Before its enrollment the new key is unknown: refused, with the way.
	out, code := arch("import", media2)
	if code != 1 || !strings.Contains(out, archive.CheckKey) || !strings.Contains(out, "edgeseal archive devices rekey "+dev+" --key KEY") {
		t.Fatalf("import of the new board's bundle before its enrollment: exit %d\n%s", code, out)
	}
	out, code = arch("enroll-file", dev2)
	if code != 0 || !strings.Contains(out, rekeyCmd) || !strings.Contains(out, "status approved") {
		t.Fatalf("enroll-file of the new key: exit %d\n%s", code, out)
	}
	out, code = arch("import", media2)
	if code != 1 || !strings.Contains(out, archive.CheckRekey) || !strings.Contains(out, rekeyCmd) || strings.Contains(out, archive.CheckFork) {
		t.Fatalf("import of the new board's bundle before the rekey: exit %d\n%s", code, out)
	}
	rejs := answers(t, media2, ".rejection.json")
	if len(rejs) != 1 {
		t.Fatalf("%d rejections written", len(rejs))
	}
	rj, err := sync.VerifyRejection(rejs[0], akid, apub)
	if err != nil || !strings.Contains(rj.Reason, rekeyCmd) {
		t.Fatalf("signed rejection %+v: %v", rj, err)
	}

	// The rekey needs the archive daemon stopped (its journals open).
	held, err := archive.Open(context.Background(), archive.Options{Dir: adata, Key: akey, Name: aconfig.Default().Name})
	if err != nil {
		t.Fatal(err)
	}
	out, code = arch("devices", "rekey", dev, "--key", key2, "--no-activation", "--reason", "board replaced", "--by", "ops")
	held.Close()
	if code != 1 || !strings.Contains(out, "a rekey needs the archive daemon stopped") {
		t.Fatalf("rekey while the archive is open: exit %d\n%s", code, out)
	}
	if out, code := arch("devices", "rekey", dev, "--reason", "x"); code != 2 || !strings.Contains(out, "--key is required") {
		t.Fatalf("rekey without --key: exit %d\n%s", code, out)
	}
	// The new key came by file, its credential never activated: a rekey
	// to it needs the operator's explicit --no-activation.
	if out, code := arch("devices", "rekey", dev, "--key", key2, "--reason", "board replaced", "--by", "ops"); code != 1 || !strings.Contains(out, "was not activated") {
		t.Fatalf("rekey to a key not activated: exit %d\n%s", code, out)
	}
	out, code = arch("devices", "rekey", dev, "--key", key2, "--no-activation", "--reason", "board replaced", "--by", "ops")
	if code != 0 || !strings.Contains(out, "epoch 1 (key "+key1+") closed at checkpoint "+strconv.FormatUint(r1.CheckpointSize, 10)+" after 1 bundle(s)") ||
		!strings.Contains(out, "epoch 2 opened with key "+key2) || !strings.Contains(out, "archive log index 1") {
		t.Fatalf("rekey: exit %d\n%s", code, out)
	}
	t.Logf("archive devices rekey:\n%s", out)
	out, code = arch("devices", "list")
	if code != 0 || !strings.Contains(out, "EPOCH") || !strings.Contains(out, "approved  2 ") || !strings.Contains(out, "closed") {
		t.Fatalf("devices list: exit %d\n%s", code, out)
	}
	t.Logf("archive devices list:\n%s", out)
	out, _ = arch("devices", "list", "--json")
	var devs []archive.DeviceInfo
	if err := json.Unmarshal([]byte(out), &devs); err != nil || len(devs) != 1 || devs[0].CurrentEpoch() != 2 || devs[0].KeyID != key2 ||
		len(devs[0].Epochs) != 1 || devs[0].Epochs[0].KeyID != key1 || devs[0].Epochs[0].ClosedBy != "ops" || devs[0].Epochs[0].Bundle != r1.BundleDigest {
		t.Fatalf("devices list --json: %v\n%s", err, out)
	}

	// The new journal, from size 0, is epoch 2; its receipt goes back.
	out, code = arch("import", media2)
	if code != 0 || !strings.Contains(out, "1 accepted, 0 refused") {
		t.Fatalf("import of the new board's bundle after the rekey: exit %d\n%s", code, out)
	}
	rs := answers(t, media2, ".receipt.json")
	if len(rs) != 1 {
		t.Fatalf("%d receipts", len(rs))
	}
	r2, err := archivesig.VerifyReceipt(rs[0], akid, apub)
	if err != nil || r2.Epoch != 2 || r2.LogIndex != 2 {
		t.Fatalf("new epoch receipt %+v: %v", r2, err)
	}
	out, code = bundlesCLI(t, "bundles", "import-receipts", "--config", filepath.Join(a2.dir, "agent.yaml"), "--archive-key", filepath.Join(adata, "archive.key.pub"), media2)
	if code != 0 || !strings.Contains(out, "1 delivered") {
		t.Fatalf("import-receipts on the new board: exit %d\n%s", code, out)
	}

	// The old epoch: its bundle still verifies offline and is answered
	// with its receipt again, or a fresh receipt of the same log entry.
	if out, code := bundlesCLI(t, "verify", filepath.Join(media1, filepath.Base(files1[0])), "--trust", dev1); code != 0 {
		t.Fatalf("verify of the old epoch's bundle: exit %d\n%s", code, out)
	}
	if out, code := arch("import", media1); code != 0 || !strings.Contains(out, "1 accepted, 0 refused") {
		t.Fatalf("old epoch bundle again: exit %d\n%s", code, out)
	}
	if again := answers(t, media1, ".receipt.json"); len(again) != 1 || !sameLogEntry(again[0], first[0]) {
		t.Fatal("the old epoch's bundle got another receipt")
	}
	// The old board's second bundle, delivered after the rekey: refused.
	out, code = arch("import", late)
	if code != 1 || !strings.Contains(out, archive.CheckEpoch) || !strings.Contains(out, "closed at checkpoint "+strconv.FormatUint(r1.CheckpointSize, 10)) {
		t.Fatalf("old key after the rekey: exit %d\n%s", code, out)
	}
	t.Logf("old key after the rekey:\n%s", out)
}

// TestRekeyCandidateOverMQTT: the replaced board's `agent enroll` reaches
// the running archive daemon over MQTT; the device stays approved with
// its old key, the new key waits, and the signed answer the device
// prints names the rekey command (and the approval, for a journal that
// goes on).
func TestRekeyCandidateOverMQTT(t *testing.T) {
	needAgent(t)
	ar := startEmbeddedArchive(t)
	const dev = "e2e-site/dev-1"
	a1 := newAgentDir(t, agentOpts{sealEvery: 1000, sealInterval: "1h", maxBody: "64 KiB"})
	dev1 := enrollFile(t, a1)
	key1 := keyIDOf(t, dev1)
	if out, code := bundlesCLI(t, "archive", "enroll-file", dev1, "--data-dir", ar.dataDir); code != 0 {
		t.Fatalf("enroll-file: exit %d\n%s", code, out)
	}
	if out, code := bundlesCLI(t, "archive", "devices", "approve", dev, "--key", key1, "--no-activation", "--data-dir", ar.dataDir); code != 0 {
		t.Fatalf("approve: exit %d\n%s", code, out)
	}

	a2 := newAgentDir(t, agentOpts{sealEvery: 1000, sealInterval: "1h", maxBody: "64 KiB"})
	key2 := keyIDOf(t, enrollFile(t, a2))
	cfg := filepath.Join(a2.dir, "agent.yaml")
	appendFile(t, cfg, "sync:\n  broker: "+ar.broker+"\n  archive_key: "+ar.keyFile+".pub\n")
	out, code := bundlesCLI(t, "agent", "enroll", "--config", cfg, "--timeout", "30s")
	if code != 0 || !strings.Contains(out, "pending") || !strings.Contains(out, "edgeseal archive devices rekey "+dev+" --key "+key2) ||
		!strings.Contains(out, "edgeseal archive devices approve "+dev+" --key "+key2) {
		t.Fatalf("agent enroll of the new board: exit %d\n%s\n%s", code, out, ar.stderr)
	}
	t.Logf("agent enroll:\n%s", out)
	out, code = bundlesCLI(t, "archive", "devices", "list", "--json", "--data-dir", ar.dataDir)
	var devs []archive.DeviceInfo
	if code != 0 || json.Unmarshal([]byte(out), &devs) != nil || len(devs) != 1 || devs[0].Status != archive.StatusApproved ||
		devs[0].KeyID != key1 || devs[0].Pending == nil {
		t.Fatalf("devices list: exit %d\n%s", code, out)
	}
	if tr, err := trustfile.ParseTrust(devs[0].Pending.Trust); err != nil || tr.KeyID != key2 {
		t.Fatalf("pending trust: %v\n%s", err, out)
	}
	if logs := ar.logs(); !strings.Contains(logs, "edgeseal archive devices rekey "+dev+" --key "+key2) {
		t.Fatalf("the enrollment alert does not name the rekey:\n%s", logs)
	}
}
