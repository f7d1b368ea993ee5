package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/edgeseal/edgeseal/bundle/archivesig"
	"github.com/edgeseal/edgeseal/internal/fsutil"
	mediapkg "github.com/edgeseal/edgeseal/sync/media"
)

// TestArchiveMigrateLogE2E, through the binary: an archive created on
// the journal engine (archive_log.engine: journal) takes a device's
// bundles from media and writes their receipts. With the engine unset
// (the default: posix for a new data dir) the daemon starts on the
// journal it finds, logging that it should be migrated, and creates no
// POSIX log; `archive migrate-log` refuses while it runs, then migrates
// the stopped archive (the journal set aside in log.migrated), and a
// second run changes nothing. The daemon then starts on posix; the old
// receipts verify (`verify receipt`) and their checkpoints are in the
// new log's /log/ tiles (`verify archive --log`); the device's next
// bundles are appended after the migrated entries, and every receipt,
// old and new, relates to one log.
func TestArchiveMigrateLogE2E(t *testing.T) {
	needAgent(t)
	d := newWitnessDevice(t, "dev-1")
	// One agent run (the simulated TPM's clock restarts with its
	// process): two bundles for the journal archive, two for after.
	witnessRounds(t, d, "r", 4)
	full := filepath.Join(t.TempDir(), "media")
	d.export(t, full)
	files, err := mediapkg.BundleFiles(full)
	if err != nil || len(files) != 4 {
		t.Fatalf("exported %d bundles (%v), want 4", len(files), err)
	}
	oldMedia, newMedia := t.TempDir(), t.TempDir()
	for i, f := range files {
		to := oldMedia
		if i >= 2 {
			to = newMedia
		}
		b, err := os.ReadFile(filepath.Join(full, f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(to, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}

	dir := t.TempDir()
	base := "data_dir: data\nmqtt:\n  embedded:\n    listen: 127.0.0.1:0\nlog:\n  format: json\nmetrics:\n  listen: 127.0.0.1:0\n"
	journalCfg := filepath.Join(dir, "journal.yaml")
	if err := os.WriteFile(journalCfg, []byte(base+"archive_log:\n  engine: journal\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "archive.yaml")
	if err := os.WriteFile(cfg, []byte(base), 0o644); err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(dir, "data")
	cli := func(want int, args ...string) string {
		t.Helper()
		out, code := bundlesCLI(t, args...)
		if code != want {
			t.Fatalf("edgeseal %s: exit %d, want %d\n%s", strings.Join(args, " "), code, want, out)
		}
		return out
	}
	cli(0, "archive", "enroll-file", d.trust, "--config", journalCfg)
	cli(0, "archive", "devices", "approve", "e2e-site/dev-1", "--key", keyIDOf(t, d.trust), "--no-activation", "--config", journalCfg)
	cli(0, "archive", "import", oldMedia, "--config", journalCfg)
	oldReceipts, _ := filepath.Glob(filepath.Join(oldMedia, mediapkg.ReceiptsDir, "*"+mediapkg.ReceiptSuffix))
	if len(oldReceipts) != 2 {
		t.Fatalf("%d receipts from the journal archive, want 2", len(oldReceipts))
	}
	exists := func(rel string) bool {
		_, err := os.Lstat(filepath.Join(data, rel))
		return err == nil
	}
	if !exists("log") || exists("tlog") {
		t.Fatal("the journal archive: want data/log and no data/tlog")
	}

	// The default engine on a journal archive: it stays on the journal.
	p := startArchiveProc(t, cfg)
	if !strings.Contains(p.logs(), "archive migrate-log") || p.logField("archive ready", "logEngine") != "journal" {
		t.Errorf("not on the journal, or no line telling the operator to migrate:\n%s", p.logs())
	}
	if out := cli(1, "archive", "migrate-log", "--config", cfg); !strings.Contains(out, "stop the archive daemon first") {
		t.Errorf("migrate-log beside the running daemon:\n%s", out)
	}
	p.stop(t)
	if exists("tlog") {
		t.Fatal("the daemon on the default engine created a POSIX log beside the journal")
	}

	out := cli(0, "archive", "migrate-log", "--config", cfg)
	if !strings.Contains(out, "migrated the archive log (") || !strings.Contains(out, "log.migrated") {
		t.Fatalf("migrate-log:\n%s", out)
	}
	if !exists("tlog/checkpoint") || exists("log") || !exists("log.migrated") {
		t.Fatal("after migrate-log: want data/tlog, the journal in data/log.migrated")
	}
	if out := cli(0, "archive", "migrate-log", "--config", cfg); !strings.Contains(out, "nothing to do") {
		t.Fatalf("migrate-log again:\n%s", out)
	}
	if out := cli(2, "archive", "migrate-log", "--config", journalCfg); !strings.Contains(out, "set it to posix") {
		t.Fatalf("migrate-log with the journal engine configured:\n%s", out)
	}

	p = startArchiveProc(t, cfg)
	if strings.Contains(p.logs(), "archive migrate-log") || p.logField("archive ready", "logEngine") != "posix" {
		t.Errorf("the migrated archive still asks to be migrated:\n%s", p.logs())
	}
	p.stop(t)
	pub := filepath.Join(data, "archive.key.pub")
	out = cli(0, append([]string{"verify", "receipt", "--archive-key", pub}, oldReceipts...)...)
	if strings.Count(out, ": verified") != len(oldReceipts) {
		t.Fatalf("verify receipt of the old receipts:\n%s", out)
	}
	a := witnessArchive{data: data}
	out = cli(0, "verify", "archive", "--archive-key", pub, "--log", a.mirror(t), filepath.Join(oldMedia, mediapkg.ReceiptsDir))
	if strings.Contains(out, "not related") || !strings.Contains(out, "2 checkpoint(s) are in the log") || !strings.Contains(out, "no inconsistency found") {
		t.Fatalf("verify archive of the old receipts against the migrated log:\n%s", out)
	}

	// The device's next bundles: appended after the migrated entries.
	cli(0, "archive", "import", newMedia, "--config", cfg)
	newReceipts, _ := filepath.Glob(filepath.Join(newMedia, mediapkg.ReceiptsDir, "*"+mediapkg.ReceiptSuffix))
	if len(newReceipts) != 2 {
		t.Fatalf("%d receipts after the migration, want 2", len(newReceipts))
	}
	pubKey := readArchivePub(t, pub)
	maxOld := uint64(0)
	for _, r := range oldReceipts {
		maxOld = max(maxOld, receiptIndex(t, r, pubKey))
	}
	for _, r := range newReceipts {
		if i := receiptIndex(t, r, pubKey); i <= maxOld {
			t.Fatalf("receipt %s at log index %d, not after the migrated entries (%d)", r, i, maxOld)
		}
	}
	all := t.TempDir()
	for _, r := range append(oldReceipts, newReceipts...) {
		b, err := os.ReadFile(r)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(all, filepath.Base(r)), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	out = cli(0, "verify", "archive", "--archive-key", pub, "--log", a.mirror(t), all)
	if strings.Contains(out, "not related") || !strings.Contains(out, "4 checkpoint(s) are in the log") || !strings.Contains(out, "no inconsistency found") {
		t.Fatalf("verify archive of the old and new receipts:\n%s", out)
	}
	t.Logf("verify archive:\n%s", out)
}

// readArchivePub reads the archive's public key file.
func readArchivePub(t *testing.T, path string) []byte {
	t.Helper()
	k, err := readEd25519Public(path)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// receiptIndex is the log index of the receipt in path, verified.
func receiptIndex(t *testing.T, path string, pub []byte) uint64 {
	t.Helper()
	raw, err := fsutil.ReadRegular(path, archivesig.MaxReceiptSize)
	if err != nil {
		t.Fatal(err)
	}
	rc, err := archivesig.VerifyReceipt(raw, archivesig.ArchiveKeyID(pub), pub)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return rc.LogIndex
}
