package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/edgeseal/edgeseal/agent"
	"github.com/edgeseal/edgeseal/agent/config"
	"github.com/edgeseal/edgeseal/bundle"
	"github.com/edgeseal/edgeseal/internal/fsutil"
	"github.com/edgeseal/edgeseal/store"
	"github.com/edgeseal/edgeseal/tpm"
)

// demoExport is one export a no-code app hands over in the demo.
type demoExport struct {
	id, principal, app, workflow, purpose, class, dest, media string
	data                                                      string
	spool                                                     bool // dropped in the spool folder, not posted
}

// demoRounds are three rounds of exports; each round ends with a seal.
var demoRounds = [][]demoExport{
	{
		{"exp-0001", "n8n-line-3", "n8n", "nightly-batch-report", "quality audit", "internal", "qa-share", "text/csv",
			"batch,line,units,rejects\nB-1042,3,1200,4\nB-1043,3,1180,2\n", false},
		{"exp-0002", "nodered-plc", "Node-RED", "sensor-export", "regulatory retention", "restricted", "regulator", "application/json",
			`{"sensor":"T-17","unit":"C","values":[712,714,711]}`, false},
		{"exp-0003", "appsmith-qa", "Appsmith", "deviation-form", "CAPA record", "confidential", "qms", "application/json",
			`{"deviation":"DV-2201","severity":"minor","signedBy":"j.doe"}`, false},
	},
	{
		// Rejected by the schema: the unit is not one the policy allows.
		{"exp-0004", "nodered-plc", "Node-RED", "sensor-export", "regulatory retention", "restricted", "regulator", "application/json",
			`{"sensor":"T-18","unit":"F","values":[160]}`, false},
		// Rejected: this principal may not export payroll.
		{"exp-0005", "n8n-line-3", "n8n", "payroll-dump", "curiosity", "confidential", "usb", "text/csv", "name,salary\n", false},
		{"exp-0006", "rpa-desk", "desktop-flow", "monthly-pdf", "management report", "internal", "board", "application/pdf",
			"%PDF-1.4\n% edgeseal demo report\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n", true},
	},
	{
		{"exp-0007", "n8n-line-3", "n8n", "nightly-batch-report", "quality audit", "internal", "qa-share", "text/csv",
			"batch,line,units,rejects\nB-1044,3,1210,1\n", false},
		{"exp-0008", "rpa-desk", "desktop-flow", "monthly-pdf", "management report", "public", "board", "application/pdf",
			"%PDF-1.4\n% wrong classification\n%%EOF\n", true},
	},
}

// journey is what happened to one export, for the summary.
type journey struct {
	e       demoExport
	outcome string // "201", "422 schema_violation", "spool: done", ...
	seq     string
	bundle  string
	status  string // from GET /v1/exports/{id}
}

// cmdDemo runs the whole job on embedded defaults: an `edgeseal agent` on
// the in-process simulated TPM, sample exports through its real unix-socket
// API and its spool folder (good ones and rejected ones), a seal after each
// round, the bundles taken from the outbox, and their offline verification.
// Everything stays in the demo directory for verifying by hand.
func cmdDemo(ctx context.Context, args []string, stdout io.Writer, log *slog.Logger) error {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	def := os.Getenv("EDGESEAL_DEMO_DIR")
	if def == "" {
		def = "./demo-out"
	}
	dir := fs.String("dir", def, "where to leave the journal, TPM state, bundles and DEVICE.json")
	if _, err := parseInterleaved(fs, args); err != nil {
		return err
	}
	if simulatorOpener == nil {
		return errors.New("demo: this binary was built without cgo, so it has no TPM simulator")
	}
	// A demo starts from nothing so its summary tells one story.
	for _, sub := range []string{"tpm", "journal", "bundles", "spool", "etc", "DEVICE.json", "tokens.txt", "agent.log"} {
		if err := os.RemoveAll(filepath.Join(*dir, sub)); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(filepath.Join(*dir, "spool"), 0o755); err != nil {
		return err
	}
	sockDir, err := os.MkdirTemp("", "edgeseal-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(sockDir)
	socket := filepath.Join(sockDir, "agent.sock")
	cfgPath, tokens, err := demoSite(*dir, socket)
	if err != nil {
		return err
	}
	cfg, err := config.Load(cfgPath)
	if err != nil {
		return err
	}
	logFile, err := os.Create(filepath.Join(*dir, "agent.log"))
	if err != nil {
		return err
	}
	defer logFile.Close()
	agentLog := slog.New(slog.NewTextHandler(logFile, &slog.HandlerOptions{Level: slog.LevelInfo}))

	fmt.Fprintf(stdout, "edgeseal demo in %s\n", *dir)
	fmt.Fprintf(stdout, "  agent: site %s, device %s, TPM = in-process simulator (INSECURE: demos and tests only)\n", cfg.Site, cfg.Device)
	fmt.Fprintf(stdout, "  API on %s, spool folder %s, log in %s\n\n", socket, cfg.Spool.Dir, logFile.Name())

	actx, stopAgent := context.WithCancel(ctx)
	agentDone := make(chan error, 1)
	go func() { agentDone <- runAgent(actx, cfg, agentLog) }()
	stopped := false
	stop := func() error {
		if stopped {
			return nil
		}
		stopped = true
		stopAgent()
		return <-agentDone
	}
	defer stop()

	c := &demoClient{http: unixHTTPClient(socket), tokens: tokens}
	if err := c.waitReady(ctx, agentDone); err != nil {
		return err
	}
	var journeys []*journey
	for round, exports := range demoRounds {
		for _, e := range exports {
			j := &journey{e: e}
			journeys = append(journeys, j)
			if e.spool {
				j.outcome, err = spoolDrop(ctx, cfg.Spool.Dir, e)
			} else {
				j.outcome, j.seq, err = c.post(ctx, e)
			}
			if err != nil {
				return err
			}
		}
		if round == 1 {
			// Someone without a token tries too: refused, and journaled.
			rep, err := c.do(ctx, "POST", "/v1/exports", "", "application/json", []byte(`{"workflow":"x","app":"curl","classification":"internal","destination":"usb","data":{}}`))
			if err != nil {
				return err
			}
			journeys = append(journeys, &journey{e: demoExport{id: "-", principal: "(no token)", app: "curl", workflow: "x"}, outcome: fmt.Sprint(rep.code)})
		}
		if _, err := c.seal(ctx); err != nil {
			return err
		}
	}
	for _, j := range journeys {
		if j.e.id == "-" {
			continue
		}
		j.status, j.seq, err = c.exportStatus(ctx, j.e.id, j.seq)
		if err != nil {
			return err
		}
	}
	if err := stop(); err != nil {
		return fmt.Errorf("demo: agent: %w", err)
	}

	// The agent is stopped: take its bundles from the outbox and enroll
	// its TPM (the trust file an operator would approve).
	bundles, trust, err := demoCollect(ctx, cfg, *dir, log)
	if err != nil {
		return err
	}
	if err := demoVerify(stdout, journeys, bundles, trust); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "\nTokens for trying the API yourself are in %s (the agent is not running now:\n", filepath.Join(*dir, "tokens.txt"))
	fmt.Fprintf(stdout, "  go run ./cmd/edgeseal agent --config %s).\n", cfgPath)
	fmt.Fprintf(stdout, "Verify by hand:\n  go run ./cmd/edgeseal verify %s/bundles/*.bundle.tar --trust %s/DEVICE.json\n", *dir, *dir)
	return nil
}

// demoCollect writes the outbox bundles and DEVICE.json into dir.
func demoCollect(ctx context.Context, cfg *config.Config, dir string, log *slog.Logger) ([]string, *bundle.Trust, error) {
	t, err := tpm.Open(ctx, cfg.TPM, tpm.Options{StateDir: cfg.TPMStateDir, PCRs: cfg.PCRs, Logger: slog.New(slog.DiscardHandler), Simulator: simulatorOpener})
	if err != nil {
		return nil, nil, err
	}
	defer t.Close()
	trust, err := bundle.NewTrust(cfg.Site, cfg.Device, agent.BundleIdentity(t.Identity()))
	if err != nil {
		return nil, nil, err
	}
	raw, err := trust.Marshal()
	if err != nil {
		return nil, nil, err
	}
	if err := fsutil.WriteFileAtomic(filepath.Join(dir, "DEVICE.json"), raw, 0o644); err != nil {
		return nil, nil, err
	}
	key, err := t.DataKey(ctx)
	if err != nil {
		return nil, nil, err
	}
	j, err := store.Open(ctx, store.Options{Dir: filepath.Join(cfg.DataDir, "journal"), EncryptionKey: key, Logger: log})
	if err != nil {
		return nil, nil, err
	}
	defer j.Close()
	out := filepath.Join(dir, "bundles")
	if err := os.MkdirAll(out, 0o755); err != nil {
		return nil, nil, err
	}
	var paths []string
	n := 0
	err = j.Outbox(ctx, func(id string, data []byte) error {
		n++
		p := filepath.Join(out, fmt.Sprintf("%03d-%s.bundle.tar", n, id))
		paths = append(paths, p)
		return fsutil.WriteFileAtomic(p, data, 0o644)
	})
	return paths, trust, err
}

// demoVerify verifies the bundles as one chain and prints each export's
// journey and each bundle's verification.
func demoVerify(stdout io.Writer, journeys []*journey, paths []string, trust *bundle.Trust) error {
	var prev *bundle.State
	inBundle := map[string]string{} // export id -> bundle
	tw := tabwriter.NewWriter(stdout, 2, 4, 2, ' ', 0)
	var lines []string
	failed := 0
	for _, p := range paths {
		b, err := readBundle(p)
		if err != nil {
			return err
		}
		rep := bundle.Verify(b, trust, prev)
		ok := 0
		for _, c := range rep.Checks {
			if c.OK {
				ok++
			} else {
				lines = append(lines, fmt.Sprintf("  FAIL %s: %s", c.Name, c.Detail))
			}
		}
		verdict := "VERIFIED"
		if rep.OK() {
			prev = rep.State
		} else {
			verdict, failed = "NOT VERIFIED", failed+1
		}
		recs, err := b.Records()
		if err != nil {
			return err
		}
		for _, raw := range recs {
			r, err := bundle.ParseRecord(raw)
			if err != nil {
				return err
			}
			var body struct {
				ExportID string `json:"exportId"`
			}
			if json.Unmarshal(r.Body, &body) == nil && body.ExportID != "" {
				inBundle[body.ExportID+"/"+r.Type] = filepath.Base(p)
			}
		}
		_, st, err := b.Statement()
		if err != nil {
			return err
		}
		cp, err := bundle.ParseCheckpoint([]byte(st.Predicate.Checkpoint))
		if err != nil {
			return err
		}
		lines = append(lines, fmt.Sprintf("%s\t%d\t%d\t%d\t%d/%d\t%s", filepath.Base(p), len(recs), cp.Size, st.Predicate.Counter, ok, len(rep.Checks), verdict))
	}

	fmt.Fprintln(tw, "EXPORT\tPRINCIPAL\tWORKFLOW\tVIA\tANSWER\tSEQ\tSTATUS\tSEALED IN")
	for _, j := range journeys {
		via := "api"
		if j.e.spool {
			via = "spool"
		}
		where := inBundle[j.e.id+"/"+bundle.TypeExport]
		if where == "" {
			where = inBundle[j.e.id+"/"+bundle.TypeExportRejected]
			if where != "" {
				where += " (rejection)"
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", j.e.id, j.e.principal, j.e.workflow, via, j.outcome, dash(j.seq), dash(j.status), dash(where))
	}
	tw.Flush()
	fmt.Fprintf(stdout, "\nverifying the chain offline against DEVICE.json:\n")
	tw = tabwriter.NewWriter(stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "BUNDLE\tRECORDS\tTREE SIZE\tNV COUNTER\tCHECKS\tRESULT")
	for _, l := range lines {
		fmt.Fprintln(tw, l)
	}
	tw.Flush()
	if failed > 0 || len(paths) == 0 {
		return fmt.Errorf("demo: %d of %d bundle(s) did not verify", failed, len(paths))
	}
	fmt.Fprintf(stdout, "\n%d bundles sealed by TPM key %s… and verified; every accepted and every refused export is in them.\n",
		len(paths), trust.KeyID[:19])
	return nil
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// spoolDrop writes an export into the spool folder the way a desktop flow
// would (data first, then the sidecar, each renamed in) and waits for the
// agent to move it to done/ or rejected/.
func spoolDrop(ctx context.Context, spool string, e demoExport) (string, error) {
	name := e.id + ".pdf"
	meta, err := json.Marshal(map[string]string{
		"id": e.id, "workflow": e.workflow, "app": e.app, "purpose": e.purpose,
		"classification": e.class, "destination": e.dest, "mediaType": e.media, "principal": e.principal,
	})
	if err != nil {
		return "", err
	}
	for _, f := range []struct {
		name string
		data []byte
	}{{name, []byte(e.data)}, {name + ".meta.json", meta}} {
		if err := fsutil.WriteFileAtomic(filepath.Join(spool, f.name), f.data, 0o644); err != nil {
			return "", err
		}
		time.Sleep(10 * time.Millisecond) // the sidecar is written last
	}
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		for _, sub := range []string{"done", "rejected"} {
			if _, err := os.Stat(filepath.Join(spool, sub, name)); err == nil {
				return "spool: " + sub, nil
			}
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	return "", fmt.Errorf("demo: spool file %s not taken within 30s", name)
}

// demoClient talks to the agent over its unix socket.
type demoClient struct {
	http   *http.Client
	tokens map[string]string
}

type reply struct {
	code int
	body []byte
}

func unixHTTPClient(socket string) *http.Client {
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socket)
		},
	}}
}

func (c *demoClient) do(ctx context.Context, method, path, token, ctype string, body []byte, hdr ...string) (reply, error) {
	req, err := http.NewRequestWithContext(ctx, method, "http://agent"+path, bytes.NewReader(body))
	if err != nil {
		return reply{}, err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return reply{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return reply{resp.StatusCode, b}, err
}

func (c *demoClient) waitReady(ctx context.Context, agentDone <-chan error) error {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-agentDone:
			return fmt.Errorf("demo: agent stopped while starting: %v", err)
		default:
		}
		if r, err := c.do(ctx, "GET", "/readyz", "", "", nil); err == nil && r.code == http.StatusOK {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return errors.New("demo: agent not ready within 30s")
}

// post sends one export: JSON payloads in the JSON envelope, anything else
// as raw bytes with Edgeseal-* headers.
func (c *demoClient) post(ctx context.Context, e demoExport) (outcome, seq string, err error) {
	tok := c.tokens[e.principal]
	var r reply
	if strings.HasSuffix(e.media, "json") {
		env, err := json.Marshal(map[string]any{
			"id": e.id, "workflow": e.workflow, "app": e.app, "purpose": e.purpose,
			"classification": e.class, "destination": e.dest, "data": json.RawMessage(e.data),
		})
		if err != nil {
			return "", "", err
		}
		r, err = c.do(ctx, "POST", "/v1/exports", tok, "application/json", env)
		if err != nil {
			return "", "", err
		}
	} else {
		r, err = c.do(ctx, "POST", "/v1/exports", tok, e.media, []byte(e.data),
			"Edgeseal-Id", e.id, "Edgeseal-Workflow", e.workflow, "Edgeseal-App", e.app,
			"Edgeseal-Purpose", e.purpose, "Edgeseal-Classification", e.class, "Edgeseal-Destination", e.dest)
		if err != nil {
			return "", "", err
		}
	}
	var body struct {
		Seq   *uint64 `json:"seq"`
		Error *struct {
			Code string  `json:"code"`
			Seq  *uint64 `json:"seq"`
		} `json:"error"`
	}
	_ = json.Unmarshal(r.body, &body)
	outcome = fmt.Sprint(r.code)
	switch {
	case body.Seq != nil:
		seq = fmt.Sprint(*body.Seq)
	case body.Error != nil:
		outcome += " " + body.Error.Code
		if body.Error.Seq != nil {
			seq = fmt.Sprint(*body.Error.Seq)
		}
	}
	if r.code >= 500 {
		return "", "", fmt.Errorf("demo: agent answered %d: %s", r.code, r.body)
	}
	return outcome, seq, nil
}

func (c *demoClient) seal(ctx context.Context) (reply, error) {
	r, err := c.do(ctx, "POST", "/v1/seal", c.tokens["site-ops"], "", nil)
	if err == nil && r.code != http.StatusOK && r.code != http.StatusCreated {
		err = fmt.Errorf("demo: seal answered %d: %s", r.code, r.body)
	}
	return r, err
}

// exportStatus asks the auditor's view of an export: journaled or sealed.
func (c *demoClient) exportStatus(ctx context.Context, id, seq string) (status, seqOut string, err error) {
	r, err := c.do(ctx, "GET", "/v1/exports/"+id, c.tokens["auditor"], "", nil)
	if err != nil {
		return "", "", err
	}
	if r.code == http.StatusNotFound {
		return "refused", seq, nil
	}
	var body struct {
		Status string `json:"status"`
		Seq    uint64 `json:"seq"`
	}
	if r.code != http.StatusOK || json.Unmarshal(r.body, &body) != nil {
		return "", "", fmt.Errorf("demo: status of %s answered %d: %s", id, r.code, r.body)
	}
	return body.Status, fmt.Sprint(body.Seq), nil
}
