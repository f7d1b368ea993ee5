package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edgeseal/edgeseal/agent"
	"github.com/edgeseal/edgeseal/internal/testenv"
)

// TestNodeREDUnit runs the node package's own tests (node --test).
func TestNodeREDUnit(t *testing.T) {
	node, _ := nodeTools(t)
	cmd := exec.Command(node, "--test", "test/")
	cmd.Dir = repoFile("integrations", "node-red")
	out, err := cmd.CombinedOutput()
	if err != nil || !bytes.Contains(out, []byte("# fail 0")) {
		t.Fatalf("node --test: %v\n%s", err, out)
	}
	if !bytes.Contains(out, []byte("# skipped 0")) && testenv.CI() {
		t.Fatalf("node --test skipped tests under CI=true (openssl missing?)\n%s", out)
	}
}

// TestNodeRED: the node package as `npm pack` makes it, installed into a
// real Node-RED (nodeREDVersion, from npm) that runs headless with the
// three example flows (JSON, file, batch) against a real agent over
// loopback TLS (a certificate made with `edgeseal agent tls-cert`, its CA
// trusted through the config node's CA file), plus
// a test flow that posts over the unix socket what the test hands it. It
// checks that accepted exports reach the accepted output with their
// receipt, a repeat the duplicate output, policy refusals the refused
// output (code and field, not retried), an untrusted certificate and an
// agent that never answers the failed output, that exports sent while the
// agent restarts are retried until 201 and none is lost, and that every
// accepted export is journaled, archived, and its bundles verify.
func TestNodeRED(t *testing.T) {
	needAgent(t)
	node, npm := nodeTools(t)
	home := nodeREDHome(t, npm)
	tarball := packNodeRED(t, npm)

	a := newAgentDir(t, agentOpts{sealEvery: 1000, sealInterval: "1s", maxBody: "64 KiB"})
	// The API certificate as `edgeseal agent tls-cert` makes it, with the
	// config lines it prints, on a fixed port so that the flows reach the
	// agent again after its restart. The flows trust the CA file it names.
	cert, key, caFile := apiCertByCommand(t, a.dir)
	cfgPath := filepath.Join(a.dir, "agent.yaml")
	cfg, err := os.ReadFile(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	tlsAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	cfg = bytes.Replace(cfg, []byte("tcp: 127.0.0.1:0"), []byte("tcp: "+tlsAddr), 1)
	cfg = bytes.Replace(cfg, []byte("tls_cert: cert.pem"), []byte("tls_cert: "+cert), 1)
	cfg = bytes.Replace(cfg, []byte("tls_key: key.pem"), []byte("tls_key: "+key), 1)
	if err := os.WriteFile(cfgPath, cfg, 0o600); err != nil {
		t.Fatal(err)
	}
	adir := t.TempDir()
	trust := enrollFile(t, a)
	ar := startArchive(t, adir, trust)
	appendFile(t, cfgPath, fmt.Sprintf("sync:\n  broker: %s\n  archive_key: %s\n", ar.broker, ar.keyFile+".pub"))
	p := a.start(t, true)
	c := unixClient(a.socket)

	userDir := t.TempDir()
	results := filepath.Join(userDir, "results.ndjson")
	report := filepath.Join(userDir, "monthly.csv")
	if err := os.WriteFile(report, []byte("batch,line,units,rejects\nB-1045,3,1190,0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	flows, creds := testFlows(t, "https://"+tlsAddr, caFile, "unix:"+a.socket, report, results)
	nr := startNodeRED(t, node, npm, home, tarball, userDir, flows, creds)

	// waitResults waits until pred holds for the recorded lines.
	waitResults := func(what string, pred func([]nrResult) bool) []nrResult {
		t.Helper()
		deadline := time.Now().Add(120 * time.Second)
		for {
			rs := readResults(t, results)
			if pred(rs) {
				return rs
			}
			if time.Now().After(deadline) {
				b, _ := os.ReadFile(results)
				t.Fatalf("%s: not after 120s; recorded:\n%s\nNode-RED:\n%s\nagent:\n%s", what, b, tail(nr.log.String()), tail(p.stderr.String()))
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	bySrc := func(rs []nrResult, src, outcome string) []nrResult {
		var out []nrResult
		for _, r := range rs {
			if r.Src == src && (outcome == "" || r.Edgeseal.Outcome == outcome) {
				out = append(out, r)
			}
		}
		return out
	}
	accepted := map[string]uint64{} // every export answered 201: its receipt's seq
	accept := func(r nrResult) {
		t.Helper()
		if r.Edgeseal.Receipt == nil || r.Edgeseal.Receipt.ExportID != r.ExportID {
			t.Fatalf("%s: accepted without its receipt: %+v", r.ExportID, r.Edgeseal)
		}
		accepted[r.ExportID] = r.Edgeseal.Receipt.Seq
	}

	// The example flows, through the TLS port: two invoices, the month's
	// report twice (the second a duplicate), a batch of three.
	nr.post("/inject/json-inject", nil)
	nr.post("/inject/json-inject", nil)
	nr.post("/inject/batch-inject", nil)
	nr.post("/inject/file-inject", nil)
	waitResults("the first report", func(rs []nrResult) bool { return len(bySrc(rs, "file-export", "")) == 1 })
	nr.post("/inject/file-inject", nil)
	rs := waitResults("the examples", func(rs []nrResult) bool {
		return len(bySrc(rs, "json-export", "")) == 2 && len(bySrc(rs, "batch-export", "")) == 3 && len(bySrc(rs, "file-export", "")) == 2
	})
	for _, src := range []string{"json-export", "batch-export"} {
		for _, r := range bySrc(rs, src, "") {
			if r.Edgeseal.Outcome != "accepted" || r.Edgeseal.Status != 201 || r.Edgeseal.Receipt == nil || r.Edgeseal.Receipt.ExportID != r.ExportID {
				t.Fatalf("%s: %+v", src, r)
			}
			accept(r)
		}
	}
	files := bySrc(rs, "file-export", "")
	if files[0].Edgeseal.Outcome != "accepted" || files[1].Edgeseal.Outcome != "duplicate" || files[1].Edgeseal.Status != 200 ||
		files[1].Edgeseal.Receipt == nil || files[1].Edgeseal.Receipt.Seq != files[0].Edgeseal.Receipt.Seq {
		t.Fatalf("the report twice: %+v", files)
	}
	accept(files[0])

	// The test flow, over the socket: accepted, and two refusals.
	drive := func(id, workflow string, data any) {
		nr.post("/drive", map[string]any{"id": id, "workflow": workflow, "data": data})
	}
	invoice := func(n int) json.RawMessage { return json.RawMessage(fmt.Sprintf(e2eInvoice, n)) }
	for i := range 3 {
		drive(fmt.Sprintf("nr-%d", i), "invoices-daily", invoice(900+i))
	}
	drive("nr-bad-schema", "invoices-daily", map[string]any{"invoice_no": "INV-000001"})
	drive("nr-bad-workflow", "no-such-workflow", invoice(1))
	rs = waitResults("the test flow", func(rs []nrResult) bool { return len(bySrc(rs, "drive-export", "")) == 5 })
	for _, r := range bySrc(rs, "drive-export", "") {
		switch r.ExportID {
		case "nr-bad-schema", "nr-bad-workflow":
			want := map[string]string{"nr-bad-schema": "schema_violation", "nr-bad-workflow": "unknown_workflow"}[r.ExportID]
			e := r.Edgeseal.Error
			if r.Edgeseal.Outcome != "refused" || r.Edgeseal.Status != 422 || r.Edgeseal.Attempts != 1 || e == nil || e.Code != want || e.Field == "" || e.Message == "" || e.Seq == nil {
				t.Fatalf("refusal %s: %+v %+v", r.ExportID, r.Edgeseal, e)
			}
		default:
			if r.Edgeseal.Outcome != "accepted" {
				t.Fatalf("%s: %+v", r.ExportID, r.Edgeseal)
			}
			accept(r)
		}
	}

	// Failed: a certificate the flow does not trust fails at once, not
	// retried, with the hint; an agent that never answers fails once the
	// retry time is used up. Neither reaches the journal.
	nr.post("/noca", map[string]any{"id": "nr-noca", "workflow": "invoices-daily", "data": invoice(970)})
	nr.post("/gone", map[string]any{"id": "nr-gone", "workflow": "invoices-daily", "data": invoice(971)})
	rs = waitResults("the failures", func(rs []nrResult) bool {
		return len(bySrc(rs, "noca-export", "")) == 1 && len(bySrc(rs, "gone-export", "")) == 1
	})
	if r := bySrc(rs, "noca-export", "")[0]; r.Edgeseal.Outcome != "failed" || r.Edgeseal.Attempts != 1 || r.Edgeseal.Error == nil ||
		r.Edgeseal.Error.Code != "UNABLE_TO_VERIFY_LEAF_SIGNATURE" || !strings.Contains(r.Edgeseal.Error.Message, "CA file") {
		t.Fatalf("without the CA: %+v %+v", r.Edgeseal, r.Edgeseal.Error)
	}
	if r := bySrc(rs, "gone-export", "")[0]; r.Edgeseal.Outcome != "failed" || r.Edgeseal.Attempts < 2 || r.Edgeseal.Error == nil ||
		r.Edgeseal.Error.Code != "ENOENT" {
		t.Fatalf("no agent: %+v %+v", r.Edgeseal, r.Edgeseal.Error)
	}

	// A restart of the agent in the middle: exports sent while it stops,
	// is gone and starts again are retried until 201; none is lost.
	var during []string
	stopped := make(chan struct{})
	go func() { p.stop(); close(stopped) }()
	for i := range 5 {
		id := fmt.Sprintf("nr-restart-%d", i)
		during = append(during, id)
		drive(id, "invoices-daily", invoice(950+i))
		time.Sleep(150 * time.Millisecond)
	}
	<-stopped
	time.Sleep(time.Second) // they wait for the agent
	p = a.start(t, true)
	rs = waitResults("the exports sent across the restart", func(rs []nrResult) bool {
		return len(bySrc(rs, "drive-export", "")) == 5+len(during)
	})
	retried := 0
	for _, r := range bySrc(rs, "drive-export", "") {
		if !strings.HasPrefix(r.ExportID, "nr-restart-") {
			continue
		}
		if r.Edgeseal.Outcome != "accepted" || r.Edgeseal.Status != 201 {
			t.Fatalf("across the restart %s: %+v %+v", r.ExportID, r.Edgeseal, r.Edgeseal.Error)
		}
		if r.Edgeseal.Attempts > 1 {
			retried++
		}
		accept(r)
	}
	t.Logf("%d of the %d exports sent across the restart needed a retry", retried, len(during))
	if retried == 0 {
		t.Fatalf("no export needed a retry across the restart: %+v", bySrc(rs, "drive-export", "accepted"))
	}
	// After the restart the TLS flows reach the agent again.
	nr.post("/inject/json-inject", nil)
	rs = waitResults("an invoice after the restart", func(rs []nrResult) bool { return len(bySrc(rs, "json-export", "")) == 3 })
	if last := bySrc(rs, "json-export", "")[2]; last.Edgeseal.Outcome != "accepted" {
		t.Fatalf("after the restart: %+v", last.Edgeseal)
	} else {
		accept(last)
	}
	if n := len(readResults(t, results)); n != 2+3+2+5+2+len(during)+1 {
		t.Fatalf("%d outcomes recorded, want one per message", n)
	}

	if len(accepted) != 2+3+1+3+len(during)+1 {
		t.Fatalf("%d distinct exports accepted", len(accepted))
	}
	// Every accepted export is journaled under its receipt's seq and
	// reaches archived.
	deadline := time.Now().Add(120 * time.Second)
	for id, seq := range accepted {
		for {
			st := exportState(t, c, id)
			if st.Seq != seq || st.Principal != "n8n-prod" {
				t.Fatalf("export %s: seq %d of %s, the receipt said %d", id, st.Seq, st.Principal, seq)
			}
			if st.Status == agent.StatusArchived {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("export %s is %q, not archived after 120s\n%s", id, st.Status, tail(ar.logs()))
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	p.stop()
	ar.stop(t)
	bundles, _ := archivedChain(t, filepath.Join(adir, "data"), nil)
	if len(bundles) == 0 {
		t.Fatal("the archive holds no bundle")
	}
	out, code := runCmd(t, append([]string{"verify", "--trust", trust}, bundles...)...)
	if code != 0 || strings.Count(out, "  VERIFIED") != len(bundles) {
		t.Fatalf("verify the archived chain: exit %d\n%s", code, out)
	}
}

// testFlows are the three example flows of integrations/node-red on one
// tab, their config node pointed at tlsURL with caFile, plus the test's
// own: POST /drive {id, workflow, data} to an export node using the
// agent's socket. Every output of every export node also goes to a
// function that records {src, id, edgeseal} as a line of results.
func testFlows(t *testing.T, tlsURL, caFile, socketURL, report, results string) ([]map[string]any, map[string]map[string]string) {
	t.Helper()
	const tab = "edgeseal-test-tab"
	flows := []map[string]any{{"id": tab, "type": "tab", "label": "edgeseal test"}}
	seen := map[string]bool{}
	for _, ex := range []string{"json-export.json", "file-export.json", "batch-export.json"} {
		b, err := os.ReadFile(repoFile("integrations", "node-red", "examples", ex))
		if err != nil {
			t.Fatal(err)
		}
		var nodes []map[string]any
		if err := json.Unmarshal(b, &nodes); err != nil {
			t.Fatalf("%s: %v", ex, err)
		}
		for _, n := range nodes {
			id := n["id"].(string)
			if seen[id] {
				continue // the config node every example carries
			}
			seen[id] = true
			switch n["type"] {
			case "edgeseal-agent":
				n["address"], n["caFile"] = tlsURL, caFile
			case "file in":
				n["filename"] = report
			}
			if n["type"] != "edgeseal-agent" {
				n["z"] = tab
			}
			flows = append(flows, n)
		}
	}
	for _, n := range []string{"json-export", "file-export", "batch-export"} {
		if !seen[n] {
			t.Fatalf("the examples have no node %s", n)
		}
	}
	flows = append(flows,
		map[string]any{"id": "edgeseal-agent-sock", "type": "edgeseal-agent", "name": "socket", "address": socketURL, "retryFor": "120", "attemptTimeout": "30"},
		// The TLS port without the CA file, and a socket nobody serves.
		map[string]any{"id": "edgeseal-agent-noca", "type": "edgeseal-agent", "name": "no CA", "address": tlsURL, "retryFor": "120"},
		map[string]any{"id": "edgeseal-agent-gone", "type": "edgeseal-agent", "name": "gone", "address": "unix:/nonexistent/edgeseal/agent.sock", "retryFor": "2"},
		map[string]any{"id": "drive-ack", "type": "http response", "z": tab, "statusCode": "202", "headers": map[string]any{}, "wires": []any{}},
		map[string]any{"id": "record-file", "type": "file", "z": tab, "filename": results, "filenameType": "str", "appendNewline": true,
			"createDir": true, "overwriteFile": "false", "encoding": "none", "wires": []any{}},
	)
	// POST /NAME {id, workflow, data} goes to the export node NAME-export.
	for name, agentNode := range map[string]string{"drive": "edgeseal-agent-sock", "noca": "edgeseal-agent-noca", "gone": "edgeseal-agent-gone"} {
		flows = append(flows,
			map[string]any{"id": name + "-in", "type": "http in", "z": tab, "url": "/" + name, "method": "post", "upload": false, "swaggerDoc": "",
				"wires": []any{[]any{"drive-ack", name + "-fn"}}},
			map[string]any{"id": name + "-fn", "type": "function", "z": tab, "outputs": 1, "wires": []any{[]any{name + "-export"}},
				"func": "const b = msg.payload; return {payload: b.data, exportId: b.id, workflow: b.workflow};"},
			map[string]any{"id": name + "-export", "type": "edgeseal-export", "z": tab, "agent": agentNode, "mode": "json",
				"classification": "internal", "destination": "archive", "concurrency": "4", "wires": []any{}},
		)
	}
	// Every export node's outputs also go to a recorder of its own.
	for _, n := range flows {
		if n["type"] != "edgeseal-export" {
			continue
		}
		src := n["id"].(string)
		rec := "record-" + src
		outs := make([]any, 4)
		old, _ := n["wires"].([]any)
		for i := range outs {
			w := []any{rec}
			if i < len(old) {
				if o, ok := old[i].([]any); ok {
					w = append(o, rec)
				}
			}
			outs[i] = w
		}
		n["wires"] = outs
		flows = append(flows, map[string]any{"id": rec, "type": "function", "z": tab, "outputs": 1, "wires": []any{[]any{"record-file"}},
			"func": fmt.Sprintf("msg.payload = JSON.stringify({src: %q, id: msg.exportId, edgeseal: msg.edgeseal}); return msg;", src)})
	}
	creds := map[string]map[string]string{
		"edgeseal-agent-local": {"token": tokN8N},
		"edgeseal-agent-sock":  {"token": tokN8N},
		"edgeseal-agent-noca":  {"token": tokN8N},
		"edgeseal-agent-gone":  {"token": tokN8N},
	}
	return flows, creds
}

// certRecipe is the openssl command of docs/integrations.md's section
// "The agent's API certificate" (the alternative to tls-cert), as written, writing the key and the
// certificate to key and cert instead of /etc/edgeseal.
func certRecipe(t *testing.T, key, cert string) string {
	t.Helper()
	raw, err := os.ReadFile(repoFile("docs", "integrations.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, sec, ok := strings.Cut(string(raw), "\n## The agent's API certificate\n")
	if !ok {
		t.Fatal("docs/integrations.md has no section \"The agent's API certificate\"")
	}
	sec, _, _ = strings.Cut(sec, "\n## ")
	var cmd []string
	for _, line := range strings.Split(sec, "\n") {
		if len(cmd) == 0 && !strings.HasPrefix(line, "openssl req ") {
			continue
		}
		cmd = append(cmd, line)
		if !strings.HasSuffix(line, "\\") {
			break
		}
	}
	if len(cmd) == 0 {
		t.Fatal("the certificate section has no openssl req command")
	}
	r := strings.Join(cmd, "\n")
	for from, to := range map[string]string{"/etc/edgeseal/api-tls/api-key.pem": key, "/etc/edgeseal/api-tls/api-cert.pem": cert} {
		if !strings.Contains(r, from) {
			t.Fatalf("the openssl command does not write %s:\n%s", from, r)
		}
		r = strings.ReplaceAll(r, from, to)
	}
	return r
}
