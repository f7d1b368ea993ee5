package e2e

import (
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

// TestAuditorProofAndEvidenceAPI runs a real agent and a real archive
// (processes, over Mosquitto) with the read API on HTTPS: an
// auditor signed in through the API runs `edgeseal proof --archive` and
// `edgeseal evidence --archive` with the real binary, and `edgeseal
// verify` passes on both (pinned to the device's trust file and the
// archive key; the pack's archive checkpoints compared by the
// consistency proofs the archive served); the access log lists the
// proof and pack reads with the user; an operator's proof and pack are
// refused (403, exit 1) and the refusals are logged.
func TestAuditorProofAndEvidenceAPI(t *testing.T) {
	needAgent(t)
	if mqtttest.Find() == "" {
		testenv.Missing(t, "mosquitto not installed")
	}
	brk := mqtttest.Start(t, nil)
	a := newAgentDir(t, agentOpts{sealEvery: 2, sealInterval: "1s"})
	dir := t.TempDir()
	cfg := writeArchiveConfig(t, dir, brk.URL, "proof-archive")
	pool := addAPI(t, dir, cfg, "", map[string][]string{"alice": {"auditor"}, "olga": {"operator"}})
	const pw = e2ePassword
	archiveKeyOf(t, dir)
	trust := enrollFile(t, a)
	enrollDevices(t, cfg, trust)
	ar := startArchiveProc(t, cfg)
	var addr string
	ar.waitFor("API listening", func() bool { addr = ar.logField("read API listening", "addr"); return addr != "" })
	appendFile(t, filepath.Join(a.dir, "agent.yaml"), fmt.Sprintf("sync:\n  broker: %s\n  archive_key: %s\n", brk.URL, ar.keyFile+".pub"))
	a.start(t, true)
	c := unixClient(a.socket)
	from := time.Now().Add(-time.Hour).UTC().Format(time.RFC3339)
	for i := range 4 {
		body := fmt.Appendf(nil, `{"id":"inv-%d","workflow":"invoices-daily","app":"n8n","classification":"internal","destination":"archive","data":%s}`, i, fmt.Sprintf(e2eInvoice, i+1))
		if r, err := do(t, c, "POST", "http://agent/v1/exports", tokN8N, "application/json", body); err != nil || r.status != http.StatusCreated {
			t.Fatalf("export %d: %d %s %v", i, r.status, r.body, err)
		}
	}
	to := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	al := newAuditor(t, addr, pool)
	if code := al.signIn("alice", pw); code != http.StatusOK {
		t.Fatalf("alice: %d", code)
	}
	const dev = "e2e-site/dev-1"
	deadline := time.Now().Add(90 * time.Second)
	for len(al.entries(dev)) < 4 {
		if time.Now().After(deadline) {
			t.Fatalf("the index of %s holds %d entries, want 4\narchive:\n%s", dev, len(al.entries(dev)), ar.stderr)
		}
		time.Sleep(250 * time.Millisecond)
	}
	tokFile := filepath.Join(dir, "alice.token")
	if err := os.WriteFile(tokFile, []byte(al.tok+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	pub := ar.keyFile + ".pub"
	base := "https://" + addr
	api := []string{"--archive", base, "--token-file", tokFile, "--cacert", filepath.Join(dir, "api.crt")}

	pf := filepath.Join(dir, "inv-2.proof.json")
	if out, code := runCmd(t, append([]string{"proof", "inv-2", "-o", pf, "--trust", trust, "--archive-key", pub}, api...)...); code != 0 {
		t.Fatalf("proof --archive: exit %d\n%s", code, out)
	}
	if out, code := runCmd(t, "verify", pf, "--trust", trust, "--archive-key", pub); code != 0 || strings.Contains(out, "NOT VERIFIED") {
		t.Fatalf("verify proof: exit %d\n%s", code, out)
	}
	pack := filepath.Join(dir, "pack")
	if out, code := runCmd(t, append([]string{"evidence", "--device", dev, "--from", from, "--to", to, "-o", pack, "--archive-key", pub}, api...)...); code != 0 {
		t.Fatalf("evidence --archive: exit %d\n%s", code, out)
	}
	out, code := runCmd(t, "verify", pack, "--trust", trust, "--archive-key", pub)
	if code != 0 || !strings.Contains(out, "PACK VERIFIED") {
		t.Fatalf("verify pack: exit %d\n%s", code, out)
	}
	idx, err := os.ReadFile(filepath.Join(pack, "data", "pack.json"))
	if err != nil {
		t.Fatal(err)
	}
	var pj struct {
		Exports []json.RawMessage
		Archive struct {
			Checkpoints []json.RawMessage
			Consistency []json.RawMessage
		}
		Accesses []struct{ Actor string }
	}
	if err := json.Unmarshal(idx, &pj); err != nil {
		t.Fatal(err)
	}
	if len(pj.Exports) != 4 || len(pj.Archive.Consistency) != len(pj.Archive.Checkpoints)-1 || len(pj.Accesses) == 0 || pj.Accesses[len(pj.Accesses)-1].Actor != "alice" {
		t.Fatalf("pack index: %d exports, %d checkpoints, %d consistency proofs, accesses %+v", len(pj.Exports), len(pj.Archive.Checkpoints), len(pj.Archive.Consistency), pj.Accesses)
	}

	// The operator is refused; the refusals are logged.
	op := newAuditor(t, addr, pool)
	if code := op.signIn("olga", pw); code != http.StatusOK {
		t.Fatalf("olga: %d", code)
	}
	opTok := filepath.Join(dir, "olga.token")
	if err := os.WriteFile(opTok, []byte(op.tok), 0o600); err != nil {
		t.Fatal(err)
	}
	opAPI := []string{"--archive", base, "--token-file", opTok, "--cacert", filepath.Join(dir, "api.crt")}
	if out, code := runCmd(t, append([]string{"evidence", "--export", "inv-1", "-o", filepath.Join(dir, "olga-pack")}, opAPI...)...); code != 1 || !strings.Contains(out, "403") {
		t.Fatalf("operator's pack: exit %d\n%s", code, out)
	}
	if _, err := os.Stat(filepath.Join(dir, "olga-pack")); !os.IsNotExist(err) {
		t.Fatalf("a refused pack was written: %v", err)
	}
	if code, b := op.call("GET", "/v1/exports/"+dev+"/inv-1/proof", nil); code != http.StatusForbidden {
		t.Fatalf("operator's proof: %d %s", code, b)
	}

	code, b := al.call("GET", "/v1/access?limit=1000&device="+url.QueryEscape(dev), nil)
	if code != http.StatusOK {
		t.Fatalf("access: %d %s", code, b)
	}
	var acc struct {
		Items []struct {
			Entry struct{ User, Action, Outcome string }
		}
	}
	if err := json.Unmarshal(b, &acc); err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, it := range acc.Items {
		got[it.Entry.User+" "+it.Entry.Action+" "+it.Entry.Outcome] = true
	}
	for _, want := range []string{"alice export.proof ok", "alice pack ok", "olga export.proof forbidden"} {
		if !got[want] {
			t.Errorf("access log of %s lacks %q: %v", dev, want, got)
		}
	}
	code, b = al.call("GET", "/v1/access?limit=1000&user=olga", nil)
	if code != http.StatusOK || !strings.Contains(string(b), `"action":"pack","outcome":"forbidden"`) {
		t.Errorf("olga's refused pack is not in the access log: %d %s", code, b)
	}
}
