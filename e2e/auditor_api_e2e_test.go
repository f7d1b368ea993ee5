package e2e

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edgeseal/edgeseal/internal/testpki"
)

// e2ePassword is the password of the read API accounts the tests add.
const e2ePassword = "correct horse battery staple"

// addAPI gives the archive config cfg (in dir) its read API on HTTPS, a
// self-signed certificate for "archive" in dir (whose pool it returns),
// apiMore more of the api section (its lines indented two spaces), and
// adds users with their roles (password e2ePassword) with the real
// binary.
func addAPI(t *testing.T, dir, cfg, apiMore string, users map[string][]string) *x509.CertPool {
	t.Helper()
	pool := testpki.SelfSigned(t, filepath.Join(dir, "api.crt"), filepath.Join(dir, "api.key"), "archive")
	appendFile(t, cfg, "api:\n  listen: 127.0.0.1:0\n  tls_cert: api.crt\n  tls_key: api.key\n"+apiMore)
	for user, roles := range users {
		args := []string{"archive", "users", "add", user, "--config", cfg}
		for _, r := range roles {
			args = append(args, "--role", r)
		}
		if out, code := runStdin(t, e2ePassword+"\n", args...); code != 0 {
			t.Fatalf("users add %s: %d\n%s", user, code, out)
		}
	}
	return pool
}

// auditor is an HTTPS client of the archive's read API.
type auditor struct {
	t    *testing.T
	base string
	hc   *http.Client
	tok  string
}

func newAuditor(t *testing.T, addr string, pool *x509.CertPool) *auditor {
	return &auditor{t: t, base: "https://" + addr, hc: &http.Client{Timeout: 30 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}}
}

func (c *auditor) call(method, path string, body []byte) (int, []byte) {
	c.t.Helper()
	req, _ := http.NewRequestWithContext(c.t.Context(), method, c.base+path, bytes.NewReader(body))
	if c.tok != "" {
		req.Header.Set("Authorization", "Bearer "+c.tok)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func (c *auditor) signIn(user, pw string) int {
	c.t.Helper()
	body, _ := json.Marshal(map[string]string{"user": user, "password": pw})
	code, b := c.call("POST", "/v1/session", body)
	if code == http.StatusOK {
		var s struct{ Token string }
		_ = json.Unmarshal(b, &s)
		c.tok = s.Token
	}
	return code
}

type apiEntry struct {
	Device, Export, Status, RefusedBy, Reason, Bundle string
}

// entries lists every index entry of the device (following next).
func (c *auditor) entries(device string) []apiEntry {
	c.t.Helper()
	var out []apiEntry
	cursor := ""
	for {
		q := "/v1/exports?limit=1000&device=" + device
		if cursor != "" {
			q += "&cursor=" + cursor
		}
		code, b := c.call("GET", q, nil)
		if code != http.StatusOK {
			c.t.Fatalf("search: %d %s", code, b)
		}
		var p struct {
			Items []apiEntry
			Next  string
		}
		if err := json.Unmarshal(b, &p); err != nil {
			c.t.Fatal(err)
		}
		out = append(out, p.Items...)
		if p.Next == "" {
			return out
		}
		cursor = p.Next
	}
}

// TestAuditorAPI runs a real agent and a real archive (processes, the
// archive's broker) with the read API on HTTPS: the agent's accepted and
// refused exports appear in the index; the archive is killed (SIGKILL)
// while the agent keeps exporting, and after its restart the index holds
// everything once, the access log still holds the reads made before the
// kill, and the refusals of wrong passwords and exporter-only accounts
// hold.
func TestAuditorAPI(t *testing.T) {
	needAgent(t)
	a := newAgentDir(t, agentOpts{sealEvery: 4, sealInterval: "1s"})
	dir := t.TempDir()
	cfg := writeArchiveConfig(t, dir, "", "")
	pool := addAPI(t, dir, cfg, "", map[string][]string{"alice": {"auditor"}, "eve": {"exporter"}})
	const pw = e2ePassword
	archiveKeyOf(t, dir)
	enrollDevices(t, cfg, enrollFile(t, a))
	ar := startArchiveProc(t, cfg)
	apiAddr := func(p *archiveProc) string {
		var addr string
		p.waitFor("API listening", func() bool { addr = p.logField("read API listening", "addr"); return addr != "" })
		return addr
	}
	appendFile(t, filepath.Join(a.dir, "agent.yaml"), fmt.Sprintf("sync:\n  broker: %s\n  archive_key: %s\n", ar.broker, ar.keyFile+".pub"))
	ag := a.start(t, true)
	c := unixClient(a.socket)
	export := func(id, workflow string, want int) {
		t.Helper()
		body := fmt.Appendf(nil, `{"id":"%s","workflow":"%s","app":"n8n","classification":"internal","destination":"archive","data":%s}`, id, workflow, fmt.Sprintf(e2eInvoice, 1))
		r, err := do(t, c, "POST", "http://agent/v1/exports", tokN8N, "application/json", body)
		if err != nil || r.status != want {
			t.Fatalf("export %s: %d %s %v", id, r.status, r.body, err)
		}
	}
	for i := range 6 {
		export(fmt.Sprintf("ok-%d", i), "invoices-daily", http.StatusCreated)
	}
	export("wf-1", "no-such-flow", http.StatusUnprocessableEntity)
	export("wf-2", "no-such-flow", http.StatusUnprocessableEntity)

	al := newAuditor(t, apiAddr(ar), pool)
	if code := al.signIn("alice", "not the password"); code != http.StatusUnauthorized {
		t.Fatalf("wrong password: %d", code)
	}
	if code := al.signIn("eve", pw); code != http.StatusForbidden {
		t.Fatalf("exporter-only account: %d", code)
	}
	if code, _ := al.call("GET", "/v1/exports", nil); code != http.StatusUnauthorized {
		t.Fatalf("anonymous search: %d", code)
	}
	if code := al.signIn("alice", pw); code != http.StatusOK {
		t.Fatalf("alice: %d", code)
	}
	const dev = "e2e-site/dev-1"
	count := func(es []apiEntry) (acc, ref int) {
		seen := map[string]bool{}
		for _, e := range es {
			k := e.Status + " " + e.Export
			if seen[k] {
				t.Fatalf("entry %s listed twice", k)
			}
			seen[k] = true
			if e.Status == "accepted" {
				acc++
			} else if e.RefusedBy == "agent" && e.Reason != "" {
				ref++
			}
		}
		return acc, ref
	}
	waitEntries := func(wantAcc, wantRef int) []apiEntry {
		t.Helper()
		deadline := time.Now().Add(90 * time.Second)
		for {
			es := al.entries(dev)
			if acc, ref := count(es); acc == wantAcc && ref == wantRef {
				return es
			}
			if time.Now().After(deadline) {
				t.Fatalf("index of %s: %+v, want %d accepted, %d refused\nagent:\n%s\narchive:\n%s", dev, es, wantAcc, wantRef, ag.stderr, ar.stderr)
			}
			time.Sleep(250 * time.Millisecond)
		}
	}
	es := waitEntries(6, 2)
	one := es[0]
	if code, b := al.call("GET", "/v1/exports/"+one.Device+"/"+one.Export, nil); code != http.StatusOK {
		t.Fatalf("export %s: %d %s", one.Export, code, b)
	}

	// SIGKILL the archive; the agent exports on, and delivers after the
	// restart.
	ar.kill()
	// The restarted broker listens where the agent looks for it.
	raw, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	fixed := strings.Replace(string(raw), "    listen: 127.0.0.1:0\n", "    listen: "+strings.TrimPrefix(ar.broker, "tcp://")+"\n", 1)
	if err := os.WriteFile(cfg, []byte(fixed), 0o644); err != nil {
		t.Fatal(err)
	}
	for i := range 4 {
		export(fmt.Sprintf("late-%d", i), "invoices-daily", http.StatusCreated)
	}
	ar = startArchiveProc(t, cfg)
	al.base = "https://" + apiAddr(ar)
	if code := al.signIn("alice", pw); code != http.StatusOK { // sessions do not outlive the process
		t.Fatalf("alice after restart: %d", code)
	}
	waitEntries(10, 2)
	code, b := al.call("GET", "/v1/access?user=alice&export="+one.Export, nil)
	if code != http.StatusOK || !strings.Contains(string(b), `"action":"export.get"`) {
		t.Fatalf("the read before the kill is not in the access log: %d %s", code, b)
	}
}
