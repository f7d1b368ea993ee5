package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/edgeseal/edgeseal/internal/testenv"
)

// nodeREDVersion is the Node-RED the system tests install from npm: a 4.1
// release that runs on Node.js 18 and later.
const nodeREDVersion = "4.1.15"

// nodeTools returns the paths of node and npm, failing (CI=true) or
// skipping without them.
func nodeTools(t *testing.T) (node, npm string) {
	t.Helper()
	var err error
	if node, err = exec.LookPath("node"); err != nil {
		testenv.Missing(t, "node (Node.js 18 or later): scripts/deps.sh test installs it")
	}
	if npm, err = exec.LookPath("npm"); err != nil {
		testenv.Missing(t, "npm: scripts/deps.sh test installs it")
	}
	return node, npm
}

// nodeREDHome installs node-red@nodeREDVersion from npm, once, into
// $EDGESEAL_NODE_RED_CACHE or the user's cache
// (~/.cache/edgeseal/node-red-VERSION), and returns that directory: its
// node_modules/node-red/red.js starts Node-RED. The install goes to a
// temporary directory renamed into place, so a broken one is never used.
func nodeREDHome(t *testing.T, npm string) string {
	t.Helper()
	base := os.Getenv("EDGESEAL_NODE_RED_CACHE")
	if base == "" {
		c, err := os.UserCacheDir()
		if err != nil {
			t.Fatalf("no cache directory for Node-RED: %v (set EDGESEAL_NODE_RED_CACHE)", err)
		}
		base = filepath.Join(c, "edgeseal")
	}
	home := filepath.Join(base, "node-red-"+nodeREDVersion)
	if _, err := os.Stat(filepath.Join(home, "node_modules", "node-red", "red.js")); err == nil {
		return home
	}
	if err := os.MkdirAll(base, 0o755); err != nil {
		t.Fatal(err)
	}
	tmp, err := os.MkdirTemp(base, "node-red-install-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(tmp)
	if err := os.WriteFile(filepath.Join(tmp, "package.json"), []byte(`{"private":true}`+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("installing node-red@%s from npm into %s", nodeREDVersion, home)
	cmd := exec.Command(npm, "install", "--no-audit", "--no-fund", "--ignore-scripts", "--save-exact", "node-red@"+nodeREDVersion)
	cmd.Dir = tmp
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("npm install node-red@%s: %v\n%s", nodeREDVersion, err, out)
	}
	if err := os.Rename(tmp, home); err != nil {
		if _, serr := os.Stat(filepath.Join(home, "node_modules", "node-red", "red.js")); serr != nil {
			t.Fatalf("Node-RED cache: %v", err)
		}
	}
	return home
}

// packNodeRED runs `npm pack` on integrations/node-red, as `make package`
// does, and returns the tarball.
func packNodeRED(t *testing.T, npm string) string {
	t.Helper()
	dir := t.TempDir()
	cmd := exec.Command(npm, "pack", "--json", "--pack-destination", dir)
	cmd.Dir = repoFile("integrations", "node-red")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("npm pack: %v\n%s", err, out)
	}
	var packed []struct {
		Filename string `json:"filename"`
	}
	if err := json.Unmarshal(out, &packed); err != nil || len(packed) != 1 {
		t.Fatalf("npm pack --json: %v\n%s", err, out)
	}
	return filepath.Join(dir, packed[0].Filename)
}

// nodeRED is a running Node-RED.
type nodeRED struct {
	t       *testing.T
	cmd     *exec.Cmd
	log     *syncBuffer
	exited  chan struct{}
	waitErr error
	url     string // http://127.0.0.1:PORT
}

// freePort is a loopback TCP port free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// startNodeRED installs the packed node into userDir, writes settings,
// flows and their credentials (unencrypted: credentialSecret false) there,
// starts Node-RED headless on a free loopback port and waits until it has
// started the flows.
func startNodeRED(t *testing.T, node, npm, home, tarball, userDir string, flows []map[string]any, creds map[string]map[string]string) *nodeRED {
	t.Helper()
	install := exec.Command(npm, "install", "--no-audit", "--no-fund", "--offline", "--prefix", userDir, tarball)
	if out, err := install.CombinedOutput(); err != nil {
		t.Fatalf("npm install %s: %v\n%s", tarball, err, out)
	}
	port := freePort(t)
	settings := fmt.Sprintf(`module.exports = {
  uiHost: '127.0.0.1', uiPort: %d, flowFile: 'flows.json', credentialSecret: false,
  httpAdminRoot: '/', httpNodeRoot: '/', externalModules: { autoInstall: false },
  logging: { console: { level: 'info', metrics: false, audit: false } },
  diagnostics: { enabled: false }, telemetry: { enabled: false },
};
`, port)
	for name, v := range map[string]any{"flows.json": flows, "flows_cred.json": creds} {
		b, err := json.MarshalIndent(v, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(userDir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(userDir, "settings.js"), []byte(settings), 0o600); err != nil {
		t.Fatal(err)
	}
	n := &nodeRED{t: t, log: &syncBuffer{}, exited: make(chan struct{}), url: fmt.Sprintf("http://127.0.0.1:%d", port)}
	n.cmd = exec.Command(node, filepath.Join(home, "node_modules", "node-red", "red.js"),
		"--userDir", userDir, "--settings", filepath.Join(userDir, "settings.js"))
	n.cmd.Stdout, n.cmd.Stderr = n.log, n.log
	n.cmd.Env = append(os.Environ(), "NODE_RED_ENABLE_PROJECTS=false")
	if err := n.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { n.waitErr = n.cmd.Wait(); close(n.exited) }()
	t.Cleanup(func() {
		_ = n.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-n.exited:
		case <-time.After(20 * time.Second):
			_ = n.cmd.Process.Kill()
			<-n.exited
		}
		if t.Failed() {
			t.Logf("Node-RED log:\n%s", tail(n.log.String()))
		}
	})
	deadline := time.Now().Add(90 * time.Second)
	for !strings.Contains(n.log.String(), "Started flows") {
		select {
		case <-n.exited:
			t.Fatalf("Node-RED exited: %v\n%s", n.waitErr, n.log)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("Node-RED did not start its flows in 90s\n%s", n.log)
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, bad := range []string{"Waiting for missing types", "[error]"} {
		if strings.Contains(n.log.String(), bad) {
			t.Fatalf("Node-RED: %q\n%s", bad, n.log)
		}
	}
	return n
}

// post POSTs body (JSON) to Node-RED's path and wants a 2xx.
func (n *nodeRED) post(path string, body any) {
	n.t.Helper()
	var r *http.Response
	var err error
	if body == nil {
		r, err = http.Post(n.url+path, "", nil)
	} else {
		b, _ := json.Marshal(body)
		r, err = http.Post(n.url+path, "application/json", strings.NewReader(string(b)))
	}
	if err != nil {
		n.t.Fatalf("POST %s: %v", path, err)
	}
	r.Body.Close()
	if r.StatusCode/100 != 2 {
		n.t.Fatalf("POST %s: %s", path, r.Status)
	}
}

// nrResult is one line the test flows record: the export node that sent
// the message and what it says.
type nrResult struct {
	Src      string `json:"src"`
	ExportID string `json:"id"`
	Edgeseal struct {
		Outcome  string `json:"outcome"`
		Status   int    `json:"status"`
		Attempts int    `json:"attempts"`
		ExportID string `json:"exportId"`
		Line     int    `json:"line"`
		Receipt  *struct {
			ExportID  string `json:"exportId"`
			Seq       uint64 `json:"seq"`
			Duplicate bool   `json:"duplicate"`
		} `json:"receipt"`
		Error *struct {
			Code    string  `json:"code"`
			Field   string  `json:"field"`
			Message string  `json:"message"`
			Seq     *uint64 `json:"seq"`
		} `json:"error"`
	} `json:"edgeseal"`
}

// readResults reads the recorded lines.
func readResults(t *testing.T, path string) []nrResult {
	t.Helper()
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return nil
	} else if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []nrResult
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if strings.TrimSpace(sc.Text()) == "" {
			continue
		}
		var r nrResult
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			continue // a line still being written
		}
		out = append(out, r)
	}
	return out
}
