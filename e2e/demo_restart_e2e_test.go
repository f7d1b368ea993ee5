package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/edgeseal/edgeseal/agent/api"
)

// demoCommand is a command line `edgeseal demo` prints for the operator,
// "  go run ./cmd/edgeseal ARGS".
const demoCommand = "  go run ./cmd/edgeseal "

// TestDemoRestart: `edgeseal demo`, then the archive and the agent run
// again exactly as the demo's last lines say, each in a process of its own
// (the simulator starts afresh in the new agent process, as after a
// reboot), and its broker refuses clients without a certificate of the
// demo's CA, then one more export: the archive accepts its bundle (a receipt,
// status archived) and `edgeseal verify` accepts it after the demo's last
// bundle, and the whole chain with it.
func TestDemoRestart(t *testing.T) {
	needAgent(t)
	dir := t.TempDir()
	out, err := exec.Command(agentBin, "demo", "--dir", dir).CombinedOutput()
	if err != nil {
		t.Fatalf("demo: %v\n%s", err, out)
	}
	var archiveArgs, agentArgs, verifyArgs []string
	socket := ""
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		line := sc.Text()
		if s, ok := strings.CutPrefix(line, "The agent's API is on "); ok {
			socket, _, _ = strings.Cut(s, ", ")
		}
		rest, ok := strings.CutPrefix(line, demoCommand)
		if !ok {
			continue
		}
		args := strings.Fields(rest)
		switch {
		case args[0] == "archive" && archiveArgs == nil:
			archiveArgs = args
		case args[0] == "agent" && agentArgs == nil:
			if archiveArgs == nil {
				t.Fatalf("the demo says to start the agent before the archive:\n%s", out)
			}
			agentArgs = args
		case args[0] == "verify" && slices.Contains(args, "--previous"):
			verifyArgs = args
		}
	}
	if archiveArgs == nil || agentArgs == nil || verifyArgs == nil || socket == "" {
		t.Fatalf("the demo's last lines do not say how to run the archive and the agent again, where the API is and how to verify a later bundle:\n%s", out)
	}

	arc := startDemoProc(t, "archive", archiveArgs)
	arc.waitFor(t, "archive ready")
	m := demoBrokerAddr.FindSubmatch(out)
	if m == nil {
		t.Fatalf("the demo does not name its broker's ssl:// address:\n%s", out)
	}
	checkDemoBrokerRefusesAnonymous(t, string(m[1]), dir)
	checkDemoDashboard(t, string(out))
	ag := startDemoProc(t, "agent", agentArgs)
	c := unixClient(socket)
	deadline := time.Now().Add(60 * time.Second)
	for {
		ag.alive(t)
		if r, err := do(t, c, "GET", "http://agent/readyz", "", "", nil); err == nil && r.status == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("agent not ready after 60s\n%s", ag.stderr)
		}
		time.Sleep(20 * time.Millisecond)
	}

	tokens := demoTokens(t, filepath.Join(dir, "tokens.txt"))
	const id = "exp-after-restart"
	r, err := do(t, c, "POST", "http://agent/v1/exports", tokens["n8n-line-3"], "text/csv", []byte("batch,line,units,rejects\nB-1045,3,1190,0\n"),
		"Edgeseal-Id", id, "Edgeseal-Workflow", "nightly-batch-report", "Edgeseal-App", "n8n",
		"Edgeseal-Purpose", "quality audit", "Edgeseal-Classification", "internal", "Edgeseal-Destination", "qa-share")
	if err != nil || r.status != http.StatusCreated {
		t.Fatalf("export after the restart: %v %d %s", err, r.status, r.body)
	}
	if r, err := do(t, c, "POST", "http://agent/v1/seal", tokens["site-ops"], "", nil); err != nil || r.status/100 != 2 {
		t.Fatalf("seal after the restart: %v %d %s", err, r.status, r.body)
	}
	digest := waitArchived(t, c, tokens["auditor"], id, dir, arc)
	ag.stop(t)
	arc.stop(t)

	hexDigest, ok := strings.CutPrefix(digest, "sha256:")
	if !ok || len(hexDigest) != 64 {
		t.Fatalf("delivery names bundle %q", digest)
	}
	object := filepath.Join(dir, "archive", "objects", "sha256", hexDigest[:2], hexDigest)
	for i, a := range verifyArgs {
		if a == "BUNDLE" {
			verifyArgs[i] = object
		}
	}
	vout, err := exec.Command(agentBin, verifyArgs...).CombinedOutput()
	if err != nil || !strings.Contains(string(vout), "VERIFIED") || strings.Contains(string(vout), "NOT VERIFIED") {
		t.Fatalf("%v: %v\n%s", verifyArgs, err, vout)
	}
	chain, _ := filepath.Glob(filepath.Join(dir, "bundles", "*.bundle.tar"))
	vout, err = exec.Command(agentBin, append(append([]string{"verify", "--trust", filepath.Join(dir, "DEVICE.json")}, chain...), object)...).CombinedOutput()
	if err != nil || strings.Count(string(vout), "  VERIFIED") != len(chain)+1 {
		t.Fatalf("the demo's chain and the bundle after the restart: %v\n%s", err, vout)
	}
}

// waitArchived polls the export's status until it is archived and returns
// its bundle's digest; it fails at once when the archive quarantines a
// bundle, with the archive's reasons.
func waitArchived(t *testing.T, c *api.Client, token, id, dir string, arc *demoProc) string {
	t.Helper()
	deadline := time.Now().Add(120 * time.Second)
	for {
		r, err := do(t, c, "GET", "http://agent/v1/exports/"+id, token, "", nil)
		if err == nil && r.status == http.StatusOK {
			var st struct {
				Status   string `json:"status"`
				Delivery *struct {
					Bundle string `json:"bundle"`
				} `json:"delivery"`
			}
			if err := json.Unmarshal(r.body, &st); err != nil {
				t.Fatalf("export status: %v: %s", err, r.body)
			}
			if st.Status == "archived" && st.Delivery != nil {
				return st.Delivery.Bundle
			}
		}
		if reasons, _ := filepath.Glob(filepath.Join(dir, "archive", "quarantine", "*.json")); len(reasons) > 0 {
			var why []string
			for _, f := range reasons {
				b, _ := os.ReadFile(f)
				why = append(why, string(b))
			}
			t.Fatalf("the archive refused a bundle after the restart:\n%s", strings.Join(why, "\n"))
		}
		if time.Now().After(deadline) {
			t.Fatalf("export %s not archived after 120s (last answer %v %d %s)\narchive:\n%s", id, err, r.status, r.body, tail(arc.stderr.String()))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// demoTokens reads the NAME=TOKEN lines of the demo's tokens.txt.
func demoTokens(t *testing.T, path string) map[string]string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	tokens := map[string]string{}
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		name, tok, ok := strings.Cut(l, "=")
		if !ok {
			t.Fatalf("tokens.txt line %q", l)
		}
		tokens[name] = tok
	}
	return tokens
}

// demoProc is `edgeseal ARGS` started as the demo's lines say.
type demoProc struct {
	name    string
	cmd     *exec.Cmd
	stderr  *syncBuffer
	exited  chan struct{}
	waitErr error
}

func startDemoProc(t *testing.T, name string, args []string) *demoProc {
	t.Helper()
	p := &demoProc{name: name, stderr: &syncBuffer{}, exited: make(chan struct{})}
	p.cmd = exec.Command(agentBin, args...)
	p.cmd.Stdout = p.stderr
	p.cmd.Stderr = p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.waitErr = p.cmd.Wait(); close(p.exited) }()
	t.Cleanup(func() {
		_ = p.cmd.Process.Signal(syscall.SIGKILL)
		<-p.exited
	})
	return p
}

// alive fails the test when the process has exited.
func (p *demoProc) alive(t *testing.T) {
	t.Helper()
	select {
	case <-p.exited:
		t.Fatalf("%s exited: %v\n%s", p.name, p.waitErr, p.stderr)
	default:
	}
}

// waitFor waits for text in the process's output.
func (p *demoProc) waitFor(t *testing.T, text string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !strings.Contains(p.stderr.String(), text) {
		p.alive(t)
		if time.Now().After(deadline) {
			t.Fatalf("%s: no %q after 60s\n%s", p.name, text, p.stderr)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// stop sends SIGTERM and wants exit status 0.
func (p *demoProc) stop(t *testing.T) {
	t.Helper()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(60 * time.Second):
		t.Fatalf("%s did not stop on SIGTERM\n%s", p.name, p.stderr)
	}
	if p.waitErr != nil {
		t.Fatalf("%s exit: %v\n%s", p.name, p.waitErr, p.stderr)
	}
}

// demoDashboard matches the demo's last lines: the dashboard's address and
// the auditor's login.
var demoDashboard = regexp.MustCompile(`dashboard is on (http://127\.0\.0\.1:\d+/)\n  sign in as (\S+), password (\S+) `)

// checkDemoDashboard: the restarted archive serves the dashboard at the
// address the demo printed, and the login it printed signs in as an
// auditor.
func checkDemoDashboard(t *testing.T, out string) {
	t.Helper()
	m := demoDashboard.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("the demo does not end with the dashboard's address and a login:\n%s", out)
	}
	r, err := http.Get(m[1])
	if err != nil {
		t.Fatal(err)
	}
	r.Body.Close()
	if r.StatusCode != http.StatusOK || r.Header.Get("Content-Security-Policy") == "" {
		t.Fatalf("GET %s: %d %v", m[1], r.StatusCode, r.Header)
	}
	body, _ := json.Marshal(map[string]string{"user": m[2], "password": m[3]})
	r, err = http.Post(m[1]+"v1/session", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	var sess struct{ Roles []string }
	_ = json.NewDecoder(r.Body).Decode(&sess)
	r.Body.Close()
	if r.StatusCode != http.StatusOK || !slices.Contains(sess.Roles, "auditor") {
		t.Fatalf("sign-in with the demo's login: %d, roles %v", r.StatusCode, sess.Roles)
	}
}
