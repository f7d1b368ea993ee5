package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edgeseal/edgeseal/agent"
	"github.com/edgeseal/edgeseal/archive"
	"github.com/edgeseal/edgeseal/bundle/archivesig"
	"github.com/edgeseal/edgeseal/bundle/bundletest"
	"github.com/edgeseal/edgeseal/bundle/verify"
	"github.com/edgeseal/edgeseal/sync"
)

// TestArchiveImportRunningDaemon: `archive import` of a medium while the
// archive daemon runs (it holds the journals) hands the bundles to the
// daemon through DATA_DIR/operator/import, while an agent delivers over
// MQTT to the same daemon: the good bundles are accepted, the tampered
// one is refused with the check that caught it and its file named, the
// receipts and the rejection written back to the medium verify under the
// archive key, the agent's outbox drains; the same medium again answers
// duplicate with the same receipts. A request folder entry that is a
// symbolic link is refused by the daemon and removed, its target left.
func TestArchiveImportRunningDaemon(t *testing.T) {
	needAgent(t)
	adir := t.TempDir()
	acfg := writeArchiveConfig(t, adir, "", "")
	a := newAgentDir(t, agentOpts{sealEvery: 1000, sealInterval: "1h", maxBody: "64 KiB"})
	enrollDevices(t, acfg, enrollFile(t, a))

	// The air-gapped device: three bundles on the medium, the last one
	// tampered.
	c, err := bundletest.NewChain(t.Context(), nil, 3, bundletest.Options{Site: "air-site", Device: "dev-9"})
	if err != nil {
		t.Fatal(err)
	}
	if out, code := bundlesCLI(t, "archive", "enroll-file", writeTrust(t, c), "--config", acfg); code != 0 {
		t.Fatalf("enroll-file: exit %d\n%s", code, out)
	}
	if out, code := bundlesCLI(t, "archive", "devices", "approve", "air-site/dev-9", "--key", c.Trust.KeyID, "--no-activation", "--by", "test", "--config", acfg); code != 0 {
		t.Fatalf("approve: exit %d\n%s", code, out)
	}
	bad, _, err := c.Tamper(t.Context(), bundletest.Case{Kind: "payload.changed", Target: 2, Prev: 1})
	if err != nil {
		t.Fatal(err)
	}
	media := t.TempDir()
	badName := bundletest.MustWriteMedia(t, media, append(c.Bundles[:2:2], bad)...)[2]

	ar := startArchiveProc(t, acfg)
	defer ar.stop(t)
	appendFile(t, filepath.Join(a.dir, "agent.yaml"), fmt.Sprintf("sync:\n  broker: %s\n  archive_key: %s\n", ar.broker, ar.keyFile+".pub"))
	p := airGapRounds(t, a, 3) // the agent delivers over MQTT meanwhile

	out, code := bundlesCLI(t, "archive", "import", media, "--config", acfg)
	if code != 1 || !strings.Contains(out, "the archive daemon runs") || !strings.Contains(out, "2 accepted, 1 refused (0 duplicate)") ||
		!strings.Contains(out, badName+"  air-site/dev-9  REFUSED") || !strings.Contains(out, verify.CheckPayloadsDigest) ||
		strings.Count(out, "  air-site/dev-9  accepted") != 2 {
		t.Fatalf("archive import beside the daemon: exit %d\n%s\narchive:\n%s", code, out, tail(ar.logs()))
	}
	keyID := archive.KeyID(ar.pub)
	receipts := func() map[string]string {
		t.Helper()
		got := map[string]string{}
		paths, _ := filepath.Glob(filepath.Join(media, "receipts", "*.receipt.json"))
		for _, p := range paths {
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			r, err := archivesig.VerifyReceipt(b, keyID, ar.pub)
			if err != nil || r.Device != "air-site/dev-9" {
				t.Fatalf("%s: %+v %v", p, r, err)
			}
			got[filepath.Base(p)] = r.BundleDigest
		}
		return got
	}
	first := receipts()
	if len(first) != 2 {
		t.Fatalf("%d receipts: %v", len(first), first)
	}
	rb, err := os.ReadFile(filepath.Join(media, "receipts", strings.TrimSuffix(badName, ".tar")+".rejection.json"))
	if err != nil {
		t.Fatal(err)
	}
	if rj, err := sync.VerifyRejection(rb, keyID, ar.pub); err != nil || !strings.Contains(strings.Join(rj.Checks, ","), verify.CheckPayloadsDigest) {
		t.Fatalf("rejection %+v: %v", rj, err)
	}

	// The same medium again: duplicates, the same receipts.
	out, code = bundlesCLI(t, "archive", "import", media, "--config", acfg)
	if code != 1 || !strings.Contains(out, "2 accepted, 1 refused (2 duplicate)") || strings.Count(out, "  air-site/dev-9  duplicate") != 2 {
		t.Fatalf("archive import again: exit %d\n%s", code, out)
	}
	again := receipts()
	for k, v := range first {
		if again[k] != v {
			t.Fatalf("receipt %s: %s again, %s first", k, again[k], v)
		}
	}

	// The agent's bundles were delivered over MQTT beside the imports.
	cl := unixClient(a.socket)
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		rep, err := do(t, cl, "GET", "http://agent/v1/status", tokAuditor, "", nil)
		var st agent.Status
		if err == nil && rep.status == http.StatusOK && json.Unmarshal(rep.body, &st) == nil && st.Outbox == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("outbox not drained over MQTT: %v\n%s", err, tail(ar.logs()))
		}
	}
	p.kill()
	if st := ar.stats(t); st.Accepted != 5 || st.Refused != 2 || st.Duplicates < 2 {
		t.Fatalf("archive counted %+v, want 5 accepted (3 over MQTT, 2 imported), 2 refused, 2 duplicates", st)
	}

	// A request entry that is a link is not followed.
	target := filepath.Join(t.TempDir(), "good.tar")
	if err := os.WriteFile(target, []byte("not read"), 0o644); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(archive.ImportRequestDir(ar.dataDir), "1-000001.bundle")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if _, err := os.Lstat(link); os.IsNotExist(err) && strings.Contains(ar.logs(), "import request refused") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a linked request entry was not refused\n%s", tail(ar.logs()))
		}
	}
	if _, err := os.Stat(target); err != nil {
		t.Fatalf("the link's target: %v", err)
	}
}
