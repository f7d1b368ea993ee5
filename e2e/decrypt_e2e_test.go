package e2e

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edgeseal/edgeseal/internal/testenv"
	"github.com/edgeseal/edgeseal/sync/mqtttest"
)

// TestDecryptThroughCustody runs a real agent that seals payloads to the
// archive's content key and a real archive (processes, over Mosquitto)
// whose read API lets the decryptor role decrypt confidential exports:
// an auditor with that role runs `edgeseal evidence --archive --decrypt
// --reason ... --encrypt-to` with the real binary; the sealed file holds
// no plaintext; `edgeseal evidence open` with the auditor's own key gives
// a pack that `edgeseal verify` passes, whose plaintext is the exported
// bytes. An auditor without the role is refused (exit 1, 403) and writes
// nothing. Both the decryption and the refusal are decrypt entries in the
// export's access history, with the reason.
func TestDecryptThroughCustody(t *testing.T) {
	needAgent(t)
	if mqtttest.Find() == "" {
		testenv.Missing(t, "mosquitto not installed")
	}
	brk := mqtttest.Start(t, nil)
	a := newAgentDir(t, agentOpts{sealEvery: 1, sealInterval: "250ms"})
	dir := t.TempDir()
	cfg := writeArchiveConfig(t, dir, brk.URL, "decrypt-archive")
	pool := addAPI(t, dir, cfg, "  decrypt:\n    - classification: confidential\n      roles: [decryptor]\n",
		map[string][]string{"alice": {"auditor", "decryptor"}, "bob": {"auditor"}})
	const pw = e2ePassword
	archiveKeyOf(t, dir)
	trust := enrollFile(t, a)
	enrollDevices(t, cfg, trust)
	ck := filepath.Join(a.dir, "content-key.json")
	if out, code := runCmd(t, "archive", "content-key", "new", "--config", cfg, "--out", ck); code != 0 {
		t.Fatalf("archive content-key new: exit %d\n%s", code, out)
	}
	ar := startArchiveProc(t, cfg)
	var addr string
	ar.waitFor("API listening", func() bool { addr = ar.logField("read API listening", "addr"); return addr != "" })
	appendFile(t, filepath.Join(a.dir, "agent.yaml"), fmt.Sprintf("sync:\n  broker: %s\n  archive_key: %s\nencryption:\n  content_key: %s\n", brk.URL, ar.keyFile+".pub", ck))
	a.start(t, true)
	mark := make([]byte, 8)
	_, _ = rand.Read(mark)
	marker := "OKAPI-" + hex.EncodeToString(mark)
	data := strings.Replace(fmt.Sprintf(e2eInvoice, 1), "ACME", marker, 1)
	body := fmt.Appendf(nil, `{"id":"conf-1","workflow":"invoices-daily","app":"n8n","classification":"confidential","destination":"archive","data":%s}`, data)
	if r, err := do(t, unixClient(a.socket), "POST", "http://agent/v1/exports", tokN8N, "application/json", body); err != nil || r.status != http.StatusCreated {
		t.Fatalf("export: %d %s %v", r.status, r.body, err)
	}
	al := newAuditor(t, addr, pool)
	if code := al.signIn("alice", pw); code != http.StatusOK {
		t.Fatalf("alice: %d", code)
	}
	const dev = "e2e-site/dev-1"
	deadline := time.Now().Add(90 * time.Second)
	for len(al.entries(dev)) < 1 {
		if time.Now().After(deadline) {
			t.Fatalf("the export is not indexed\narchive:\n%s", ar.stderr)
		}
		time.Sleep(250 * time.Millisecond)
	}
	bob := newAuditor(t, addr, pool)
	if code := bob.signIn("bob", pw); code != http.StatusOK {
		t.Fatalf("bob: %d", code)
	}
	api := func(who *auditor) []string {
		tok := filepath.Join(dir, fmt.Sprintf("%p.token", who))
		if err := os.WriteFile(tok, []byte(who.tok+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		return []string{"--archive", "https://" + addr, "--token-file", tok, "--cacert", filepath.Join(dir, "api.crt")}
	}
	pub := ar.keyFile + ".pub"
	akey := filepath.Join(dir, "alice.key")
	if out, code := runCmd(t, "evidence", "keygen", "--out", akey); code != 0 {
		t.Fatalf("evidence keygen: exit %d\n%s", code, out)
	}

	// Decrypted for alice, sealed to her own key.
	sealed := filepath.Join(dir, "conf-1.sealed")
	const why = "tax audit 2026"
	if out, code := runCmd(t, append([]string{"evidence", "--export", "conf-1", "--decrypt", "--reason", why, "--encrypt-to", akey + ".pub", "-o", sealed, "--trust", trust, "--archive-key", pub}, api(al)...)...); code != 0 {
		t.Fatalf("evidence --decrypt --encrypt-to: exit %d\n%s", code, out)
	}
	raw, err := os.ReadFile(sealed)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(raw, []byte(marker)) {
		t.Fatal("the sealed pack holds the plaintext")
	}
	pack := filepath.Join(dir, "pack")
	if out, code := runCmd(t, "evidence", "open", "--key", akey, "-o", pack, sealed, "--trust", trust, "--archive-key", pub); code != 0 {
		t.Fatalf("evidence open: exit %d\n%s", code, out)
	}
	if out, code := runCmd(t, "verify", pack, "--trust", trust, "--archive-key", pub); code != 0 || !strings.Contains(out, "PACK VERIFIED") {
		t.Fatalf("verify the opened pack: exit %d\n%s", code, out)
	}
	pt, err := os.ReadFile(filepath.Join(pack, "data", "exports", "001", "plaintext"))
	if err != nil || !bytes.Contains(pt, []byte(marker)) {
		t.Fatalf("the pack's plaintext %.60q: %v", pt, err)
	}
	other := filepath.Join(dir, "other.key")
	if _, code := runCmd(t, "evidence", "keygen", "--out", other); code != 0 {
		t.Fatal("evidence keygen")
	}
	if out, code := runCmd(t, "evidence", "open", "--key", other, "-o", filepath.Join(dir, "pack2"), sealed); code != 1 {
		t.Fatalf("evidence open with another key: exit %d\n%s", code, out)
	}

	// Refused for bob: no role for the classification.
	if out, code := runCmd(t, append([]string{"evidence", "--export", "conf-1", "--decrypt", "--reason", "curious", "-o", filepath.Join(dir, "bob-pack")}, api(bob)...)...); code != 1 || !strings.Contains(out, "403") {
		t.Fatalf("bob's decrypt: exit %d\n%s", code, out)
	}
	if _, err := os.Stat(filepath.Join(dir, "bob-pack")); !os.IsNotExist(err) {
		t.Fatalf("a refused pack was written: %v", err)
	}

	// Both are in the export's access history.
	code, b := al.call("GET", "/v1/access?limit=1000&device="+url.QueryEscape(dev)+"&export=conf-1", nil)
	if code != http.StatusOK {
		t.Fatalf("access: %d %s", code, b)
	}
	var acc struct {
		Items []struct {
			Entry struct {
				Type, User, Action, Outcome string
				Decrypt                     *struct{ Reason, Plaintext, Refused string }
			}
		}
	}
	if err := json.Unmarshal(b, &acc); err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, it := range acc.Items {
		if e := it.Entry; e.Type == "decrypt" && e.Decrypt != nil {
			got[e.User+" "+e.Outcome+" "+e.Decrypt.Reason] = true
		}
	}
	for _, want := range []string{"alice ok " + why, "bob forbidden curious"} {
		if !got[want] {
			t.Errorf("the access history of conf-1 lacks the decrypt entry %q: %v", want, got)
		}
	}
}
