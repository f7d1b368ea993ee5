package e2e

import (
	"bytes"
	"crypto/rand"
	"crypto/x509"
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
	mark := make([]byte, 8)
	_, _ = rand.Read(mark)
	marker := "OKAPI-" + hex.EncodeToString(mark)
	r := newDecryptRig(t, "decrypt-archive", "conf-1", strings.Replace(fmt.Sprintf(e2eInvoice, 1), "ACME", marker, 1))
	const pw = e2ePassword
	dir, trust, addr, pool, ar, al := r.dir, r.trust, r.addr, r.pool, r.ar, r.alice
	const dev = decryptRigDevice
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

// decryptRigDevice is the device of a decryptRig's agent.
const decryptRigDevice = "e2e-site/dev-1"

// decryptRig is a real archive process (over Mosquitto) whose read API
// lets the decryptor role decrypt confidential exports (alice: auditor
// and decryptor; bob: auditor only), and a real agent sealing payloads
// to the archive's content key that has exported one confidential
// export, already in the archive's index.
type decryptRig struct {
	a     *agentDir
	dir   string // the archive's folder: api.crt, its keys
	cfg   string // the archive's config
	trust string // the agent's enrollment file
	addr  string // the read API's host:port
	pool  *x509.CertPool
	ar    *archiveProc
	alice *auditor // signed in
}

// newDecryptRig starts the rig; the agent exports id with data (JSON)
// as a confidential export.
func newDecryptRig(t *testing.T, name, id, data string) *decryptRig {
	t.Helper()
	needAgent(t)
	if mqtttest.Find() == "" {
		testenv.Missing(t, "mosquitto not installed")
	}
	brk := mqtttest.Start(t, nil)
	r := &decryptRig{a: newAgentDir(t, agentOpts{sealEvery: 1, sealInterval: "250ms"}), dir: t.TempDir()}
	r.cfg = writeArchiveConfig(t, r.dir, brk.URL, name)
	r.pool = addAPI(t, r.dir, r.cfg, "  decrypt:\n    - classification: confidential\n      roles: [decryptor]\n",
		map[string][]string{"alice": {"auditor", "decryptor"}, "bob": {"auditor"}})
	archiveKeyOf(t, r.dir)
	r.trust = enrollFile(t, r.a)
	enrollDevices(t, r.cfg, r.trust)
	ck := filepath.Join(r.a.dir, "content-key.json")
	if out, code := runCmd(t, "archive", "content-key", "new", "--config", r.cfg, "--out", ck); code != 0 {
		t.Fatalf("archive content-key new: exit %d\n%s", code, out)
	}
	r.ar = startArchiveProc(t, r.cfg)
	r.ar.waitFor("API listening", func() bool { r.addr = r.ar.logField("read API listening", "addr"); return r.addr != "" })
	appendFile(t, filepath.Join(r.a.dir, "agent.yaml"), fmt.Sprintf("sync:\n  broker: %s\n  archive_key: %s\nencryption:\n  content_key: %s\n", brk.URL, r.ar.keyFile+".pub", ck))
	r.a.start(t, true)
	body := fmt.Appendf(nil, `{"id":%q,"workflow":"invoices-daily","app":"n8n","classification":"confidential","destination":"archive","data":%s}`, id, data)
	if rep, err := do(t, unixClient(r.a.socket), "POST", "http://agent/v1/exports", tokN8N, "application/json", body); err != nil || rep.status != http.StatusCreated {
		t.Fatalf("export: %d %s %v", rep.status, rep.body, err)
	}
	r.alice = newAuditor(t, r.addr, r.pool)
	if code := r.alice.signIn("alice", e2ePassword); code != http.StatusOK {
		t.Fatalf("alice: %d", code)
	}
	deadline := time.Now().Add(90 * time.Second)
	for len(r.alice.entries(decryptRigDevice)) < 1 {
		if time.Now().After(deadline) {
			t.Fatalf("the export is not indexed\narchive:\n%s", r.ar.stderr)
		}
		time.Sleep(250 * time.Millisecond)
	}
	return r
}
