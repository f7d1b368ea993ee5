package e2e

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	neturl "net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/edgeseal/edgeseal/agent"
	"github.com/edgeseal/edgeseal/agent/api"
	"github.com/edgeseal/edgeseal/agent/config"
	"github.com/edgeseal/edgeseal/internal/testpki"
	"github.com/edgeseal/edgeseal/store"
	"github.com/edgeseal/edgeseal/tpm"
)

// Tokens of the e2e principals.
const (
	tokN8N      = "n8n-token-0123456789"
	tokAppsmith = "appsmith-token-0123456789"
	tokAuditor  = "auditor-token-0123456789"
	tokOperator = "operator-token-0123456789"
)

// e2ePolicy: invoices (JSON with a schema, small max size), reports (CSV
// or PDF, no schema).
const e2ePolicy = `version: 1
name: e2e
schemas:
  invoice@1: schemas/invoice-1.json
workflows:
  - name: invoices-daily
    schema: invoice@1
    classifications: [internal, confidential]
    retention: finance-10y
    destinations: [archive]
    principals: [n8n-prod]
    max_size: 4096
  - name: monthly-report
    media_types: [text/csv, application/pdf]
    classifications: [internal]
    retention: reports-7y
    destinations: [archive]
    principals: [appsmith, n8n-prod]
    max_size: 65536
`

const e2eInvoice = `{"invoice_no":"INV-%06d","issued":"2024-05-01","customer":{"id":"C1","name":"ACME"},"lines":[{"sku":"A","qty":2,"amount":10}],"total":20}`

// agentDir is the state of one agent across restarts.
type agentDir struct {
	dir     string // config, policy, data, TPM simulator state
	socket  string
	cacert  string
	tpmSpec string // the TPM when not the simulator in dir/sim
	device  string // "<site>/<device>" of its config; "" is e2e-site/dev-1
}

type agentOpts struct {
	sealEvery    int
	sealInterval string
	maxBody      string
	// notEnrolled leaves the TPM state dir empty (the agent refuses to
	// start); otherwise newAgentDir creates the device's keys, as
	// `edgeseal tpm enroll` does.
	notEnrolled bool
}

// newAgentDir writes a config, the policy and its schemas, and a
// self-signed TLS certificate for 127.0.0.1.
func newAgentDir(t *testing.T, o agentOpts) *agentDir {
	t.Helper()
	dir := t.TempDir()
	// Unix socket paths are short (108 bytes): keep it under /tmp.
	sockDir, err := os.MkdirTemp("", "es")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(sockDir) })
	a := &agentDir{dir: dir, socket: filepath.Join(sockDir, "run", "agent.sock"), cacert: filepath.Join(dir, "cert.pem")}
	writeCert(t, a.cacert, filepath.Join(dir, "key.pem"))
	if err := os.MkdirAll(filepath.Join(dir, "schemas"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"invoice-1.json", "common.json"} {
		b, err := os.ReadFile(repoFile("agent", "policy", "testdata", "schemas", f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "schemas", f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "policy.yaml"), []byte(e2ePolicy), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := fmt.Sprintf(`site: e2e-site
device: dev-1
data_dir: data
tpm: simulator:sim
tpm_insecure_simulator: true
seal:
  every: %d
  interval: %s
api:
  socket: %s
  socket_mode: 0660
  tcp: 127.0.0.1:0
  tls_cert: cert.pem
  tls_key: key.pem
  max_body: %s
  max_batch_lines: 100
policy: policy.yaml
principals:
  - {name: n8n-prod, token_sha256: %q, roles: [exporter]}
  - {name: appsmith, token_sha256: %q, roles: [exporter]}
  - {name: audit-team, token_sha256: %q, roles: [auditor]}
  - {name: site-ops, token_sha256: %q, roles: [operator, auditor]}
log:
  format: json
  level: info
`, o.sealEvery, o.sealInterval, a.socket, o.maxBody,
		config.HashToken(tokN8N), config.HashToken(tokAppsmith), config.HashToken(tokAuditor), config.HashToken(tokOperator))
	if err := os.WriteFile(filepath.Join(dir, "agent.yaml"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	if !o.notEnrolled {
		a.createKeys(t)
	}
	return a
}

// createKeys creates the device's TPM keys in the simulator, as
// `edgeseal tpm enroll` does (without a recovery wrap).
func (a *agentDir) createKeys(t *testing.T) {
	t.Helper()
	tp, err := tpm.Open(context.Background(), "simulator:"+filepath.Join(a.dir, "sim"),
		tpm.Options{StateDir: filepath.Join(a.dir, "data", "tpm"), Simulator: simulatorOpener, Create: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := tp.Close(); err != nil {
		t.Fatal(err)
	}
}

func writeCert(t *testing.T, certPath, keyPath string) {
	t.Helper()
	testpki.SelfSigned(t, certPath, keyPath, "edgeseal e2e")
}

// unixClient is a client of the agent's local API on its unix socket;
// each call names its token (do).
func unixClient(socket string) *api.Client {
	c, err := api.NewClient(api.ClientOptions{Socket: socket, Timeout: 30 * time.Second, MaxConns: 128})
	if err != nil {
		panic(err) // a socket path is all it needs
	}
	return c
}

// tlsClient is a client of the agent's TLS endpoint at addr (HOST:PORT),
// verified against the certificate in cacert.
func tlsClient(t *testing.T, cacert, addr string) *api.Client {
	t.Helper()
	c, err := api.NewClient(api.ClientOptions{URL: "https://" + addr, CACertFile: cacert, Timeout: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

type httpReply struct {
	status int
	header http.Header
	body   []byte
}

// do sends a request to the path of url (its scheme and host are the
// client's); hdr is name, value pairs.
func do(t *testing.T, c *api.Client, method, url, token, ctype string, body []byte, hdr ...string) (httpReply, error) {
	t.Helper()
	u, err := neturl.Parse(url)
	if err != nil {
		t.Fatal(err)
	}
	h := http.Header{}
	if token != "" {
		h.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		h.Set(hdr[i], hdr[i+1])
	}
	r, err := c.Do(context.Background(), api.Request{Method: method, Path: u.RequestURI(), ContentType: ctype, Header: h, Body: body})
	if err != nil {
		return httpReply{}, err
	}
	return httpReply{status: r.Status, header: r.Header, body: r.Body}, nil
}

// openJournal opens the stopped agent's journal in this process, with the
// data key from the same simulator state.
func (a *agentDir) openJournal(t *testing.T) *store.Journal {
	t.Helper()
	ctx := context.Background()
	data := filepath.Join(a.dir, "data")
	spec := "simulator:" + filepath.Join(a.dir, "sim")
	if a.tpmSpec != "" {
		spec = a.tpmSpec
	}
	tp, err := tpm.Open(ctx, spec, tpm.Options{StateDir: filepath.Join(data, "tpm"), Simulator: simulatorOpener})
	if err != nil {
		t.Fatal(err)
	}
	if tp.Identity().PCRPolicyKey != nil {
		if _, err := agent.LoadPCRAuthorization(ctx, filepath.Join(data, "tpm"), cmp.Or(a.device, "e2e-site/dev-1"), tp); err != nil {
			t.Fatal(err)
		}
	}
	key, err := tp.DataKey(ctx)
	tp.Close()
	if err != nil {
		t.Fatal(err)
	}
	j, err := store.Open(ctx, store.Options{Dir: filepath.Join(data, "journal"), EncryptionKey: key})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { j.Close() })
	return j
}

// receiptOf wants status want and an export receipt in r.
func receiptOf(t *testing.T, r httpReply, want int) agent.ExportReceipt {
	t.Helper()
	var rc agent.ExportReceipt
	if r.status != want || json.Unmarshal(r.body, &rc) != nil || rc.Leaf == "" {
		t.Fatalf("want %d and a receipt, got %d %s", want, r.status, r.body)
	}
	return rc
}
