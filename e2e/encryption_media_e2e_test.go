package e2e

import (
	"bytes"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/edgeseal/edgeseal/agent"
	"github.com/edgeseal/edgeseal/bundle/archivesig"
)

// TestContentKeyRotationOnMedia: a site synced only by removable media
// learns a rotated content key the way an MQTT site does. The agent
// seals to the first key; the archive rotates; the medium's bundles
// (sealed to the old key) are imported and opened; `bundles
// import-receipts` brings back receipts carrying the new key's
// announcement, which the stopped agent verifies, journals and keeps;
// on its next start the agent seals to the new key, with no config
// change, and that bundle is imported too.
func TestContentKeyRotationOnMedia(t *testing.T) {
	needAgent(t)
	adir := t.TempDir()
	acfg := writeArchiveConfig(t, adir, "", "")
	keyFile, _ := archiveKeyOf(t, adir)
	a := newAgentDir(t, agentOpts{sealEvery: 1000, sealInterval: "1h", maxBody: "64 KiB"})
	cfg := filepath.Join(a.dir, "agent.yaml")
	dev := enrollFile(t, a)
	enrollDevices(t, acfg, dev)
	ck := filepath.Join(a.dir, "content-key.json")
	if out, code := bundlesCLI(t, "archive", "content-key", "new", "--config", acfg, "--out", ck); code != 0 {
		t.Fatalf("archive content-key new: exit %d\n%s", code, out)
	}
	appendFile(t, cfg, fmt.Sprintf("encryption:\n  content_key: %s\n  archive_key: %s\n", ck, keyFile+".pub"))

	round := func(n int) {
		t.Helper()
		p := a.start(t, true)
		c := unixClient(a.socket)
		body := fmt.Appendf(nil, `{"id":"media-%d","workflow":"invoices-daily","app":"n8n","classification":"internal","destination":"archive","data":%s}`, n, fmt.Sprintf(e2eInvoice, n))
		if r, err := do(t, c, "POST", "http://agent/v1/exports", tokN8N, "application/json", body); err != nil || r.status != http.StatusCreated {
			t.Fatalf("export %d: %d %s %v", n, r.status, r.body, err)
		}
		if r, err := do(t, c, "POST", "http://agent/v1/seal", tokOperator, "", nil); err != nil || r.status/100 != 2 {
			t.Fatalf("seal: %d %s %v", r.status, r.body, err)
		}
		p.stop()
		media := t.TempDir()
		if out, code := bundlesCLI(t, "bundles", "export", "--config", cfg, "--to", media); code != 0 {
			t.Fatalf("bundles export: exit %d\n%s", code, out)
		}
		if n == 1 {
			if out, code := bundlesCLI(t, "archive", "content-key", "rotate", "--config", acfg); code != 0 || !strings.Contains(out, "agents learn the new key") {
				t.Fatalf("archive content-key rotate: exit %d\n%s", code, out)
			}
		}
		if out, code := bundlesCLI(t, "archive", "import", media, "--config", acfg); code != 0 || strings.Contains(out, "archive.decrypt") || !strings.Contains(out, "0 refused") {
			t.Fatalf("archive import %d: exit %d\n%s", n, code, out)
		}
		if out, code := bundlesCLI(t, "bundles", "import-receipts", "--config", cfg, "--archive-key", keyFile+".pub", media); code != 0 {
			t.Fatalf("bundles import-receipts %d: exit %d\n%s", n, code, out)
		}
	}
	round(1)
	learned, err := os.ReadFile(filepath.Join(a.dir, "data", agent.ContentKeyFile))
	if err != nil {
		t.Fatalf("the stopped agent kept no learned content key: %v", err)
	}
	_, an, err := archivesig.ParseContentKey(learned)
	if err != nil || an.Seq != 2 {
		t.Fatalf("learned announcement seq %v: %v", an, err)
	}
	st := readAgentEndState(t, a)
	if st.types["content.key"] != 1 {
		t.Fatalf("content.key records %d, want 1", st.types["content.key"])
	}
	if cur, _ := os.ReadFile(ck); bytes.Equal(cur, learned) {
		t.Fatal("the configured announcement changed")
	}
	round(2)
	st = readAgentEndState(t, a)
	if st.types["content.key"] != 1 || len(st.outbox) != 0 {
		t.Fatalf("after the second round: %d content.key records, outbox %v", st.types["content.key"], st.outbox)
	}
	keys := storedChain(t, filepath.Join(adir, "data", "objects"), dev)
	if keys[an.KeyID] != 1 || len(keys) != 3 {
		t.Fatalf("stored bundles name %v: want one payload under each key and the content.key record", keys)
	}
}
