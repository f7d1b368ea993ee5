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
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/edgeseal/edgeseal/agent/config"
	"github.com/edgeseal/edgeseal/bundle/custody"
	"github.com/edgeseal/edgeseal/bundle/merkle"
	"github.com/edgeseal/edgeseal/bundle/trustfile"
	"github.com/edgeseal/edgeseal/bundle/verify"
	"github.com/edgeseal/edgeseal/internal/fsutil"
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
	for _, sub := range []string{"tpm", "journal", "bundles", "receipts", "archive", "spool", "etc", "DEVICE.json", "tokens.txt", "agent.log", "archive.log", "pcr-key", "pcr-key.pub", "pcr-authorization.json"} {
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
	logFile, err := os.Create(filepath.Join(*dir, "agent.log"))
	if err != nil {
		return err
	}
	defer logFile.Close()
	agentLog := slog.New(slog.NewTextHandler(logFile, &slog.HandlerOptions{Level: slog.LevelInfo}))
	archiveLogFile, err := os.Create(filepath.Join(*dir, "archive.log"))
	if err != nil {
		return err
	}
	defer archiveLogFile.Close()
	archiveLog := slog.New(slog.NewTextHandler(archiveLogFile, &slog.HandlerOptions{Level: slog.LevelInfo}))

	// The archive, with its embedded MQTT broker, and the device enrolled
	// and approved there as an operator would.
	// The broker is TLS only and every client needs a certificate of the
	// demo's CA: no other local user can read bundles or take the device's
	// session.
	tf, err := writeDemoTLS(*dir, demoSiteName+"/"+demoDeviceName)
	if err != nil {
		return err
	}
	da, err := startDemoArchive(ctx, *dir, tf, archiveLog)
	if err != nil {
		return err
	}
	defer da.stop()
	cfgPath, tokens, err := demoSite(*dir, socket, da.brk.URL(), da.keyFile+".pub", tf)
	if err != nil {
		return err
	}
	cfg, err := config.Load(cfgPath)
	if err != nil {
		return err
	}
	trust, err := da.enroll(ctx, cfg.Site, cfg.Device, cfg.TPM, cfg.TPMStateDir, *dir)
	if err != nil {
		return err
	}

	fmt.Fprintf(stdout, "edgeseal demo in %s\n", *dir)
	fmt.Fprintf(stdout, "  archive: embedded MQTT broker on %s, key %s…, device %s enrolled and approved\n", da.brk.URL(), da.a.KeyID()[:19], trust.DeviceName())
	fmt.Fprintf(stdout, "  broker: TLS only, every client needs a certificate of the demo's CA (%s); the device's is %s\n", tf.CA, tf.ClientCert)
	fmt.Fprintf(stdout, "  agent: TPM = in-process simulator (INSECURE: demos and tests only), API on %s, spool folder %s\n", socket, cfg.Spool.Dir)
	fmt.Fprintf(stdout, "  recovery: the journal's data key is also wrapped to the operator recovery key %s (in production it stays offline)\n", filepath.Join(*dir, demoRecoveryKey))
	fmt.Fprintf(stdout, "  logs: %s, %s\n\n", logFile.Name(), archiveLogFile.Name())

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
		if err := c.waitDelivered(ctx); err != nil {
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

	// The agent is stopped: check its receipts and fetch the bundles they
	// name from the archive's write-once store.
	got, err := da.collect(ctx, agentPaths{tpm: cfg.TPM, tpmState: cfg.TPMStateDir, journal: filepath.Join(cfg.DataDir, "journal"), device: cfg.DeviceID()}, *dir)
	if err != nil {
		return err
	}
	if err := da.stop(); err != nil {
		return fmt.Errorf("demo: archive: %w", err)
	}
	sort.Slice(got, func(i, k int) bool { return got[i].outbox < got[k].outbox })
	if err := demoVerify(stdout, journeys, got, trust); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "\nThe archive and the agent are stopped now. To run them again, each in a terminal of its own\n")
	fmt.Fprintf(stdout, "(the archive first: the agent delivers its bundles to it):\n")
	fmt.Fprintf(stdout, "  go run ./cmd/edgeseal archive --config %s\n", filepath.Join(*dir, "archive", "archive.yaml"))
	fmt.Fprintf(stdout, "  go run ./cmd/edgeseal agent --config %s\n", cfgPath)
	fmt.Fprintf(stdout, "The agent's API is on %s, the tokens for trying it are in %s.\n", socket, filepath.Join(*dir, "tokens.txt"))
	fmt.Fprintf(stdout, "Verify by hand:\n  go run ./cmd/edgeseal verify %s/bundles/*.bundle.tar --trust %s/DEVICE.json\n", *dir, *dir)
	fmt.Fprintf(stdout, "Once archived, an export's status (GET /v1/exports/ID) names its bundle in delivery.bundle\n")
	fmt.Fprintf(stdout, "(sha256:HEX); the archive keeps it as %s/archive/objects/sha256/<first two of HEX>/HEX.\n", *dir)
	fmt.Fprintf(stdout, "Verify such a later bundle after the demo's last one:\n  go run ./cmd/edgeseal verify --trust %s/DEVICE.json --previous %s BUNDLE\n",
		*dir, filepath.Join(*dir, "bundles", filepath.Base(got[len(got)-1].path)))
	return nil
}

// demoVerify verifies the bundles as one chain and prints each export's
// journey and each bundle's verification.
func demoVerify(stdout io.Writer, journeys []*journey, got []delivered, trust *trustfile.Trust) error {
	var prev *verify.State
	inBundle := map[string]string{} // export id -> bundle
	tw := tabwriter.NewWriter(stdout, 2, 4, 2, ' ', 0)
	var lines []string
	failed := 0
	for _, dv := range got {
		p := dv.path
		b, err := readBundle(p)
		if err != nil {
			return err
		}
		rep := verify.Verify(b, trust, prev)
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
			r, err := custody.ParseRecord(raw)
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
		cp, err := merkle.ParseCheckpoint([]byte(st.Predicate.Checkpoint))
		if err != nil {
			return err
		}
		lines = append(lines, fmt.Sprintf("%s\t%d\t%d\t%d\t%d\t%d/%d\t%s", filepath.Base(p), len(recs), cp.Size, st.Predicate.Counter, dv.logIndex, ok, len(rep.Checks), verdict))
	}

	fmt.Fprintln(tw, "EXPORT\tPRINCIPAL\tWORKFLOW\tVIA\tANSWER\tSEQ\tSTATUS\tSEALED IN")
	for _, j := range journeys {
		via := "api"
		if j.e.spool {
			via = "spool"
		}
		where := inBundle[j.e.id+"/"+custody.TypeExport]
		if where == "" {
			where = inBundle[j.e.id+"/"+custody.TypeExportRejected]
			if where != "" {
				where += " (rejection)"
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", j.e.id, j.e.principal, j.e.workflow, via, j.outcome, dash(j.seq), dash(j.status), dash(where))
	}
	tw.Flush()
	fmt.Fprintf(stdout, "\nevery bundle was delivered over MQTT, stored write-once and receipted by the archive;\nthe receipts (in receipts/) verify and prove each bundle's entry in the archive log.\n\nverifying the chain offline against DEVICE.json:\n")
	tw = tabwriter.NewWriter(stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "BUNDLE\tRECORDS\tTREE SIZE\tNV COUNTER\tARCHIVE LOG\tCHECKS\tRESULT")
	for _, l := range lines {
		fmt.Fprintln(tw, l)
	}
	tw.Flush()
	if failed > 0 || len(got) == 0 {
		return fmt.Errorf("demo: %d of %d bundle(s) did not verify", failed, len(got))
	}
	fmt.Fprintf(stdout, "\n%d bundles sealed by TPM key %s…, receipted by the archive and verified; every accepted and every refused export is in them.\n",
		len(got), trust.KeyID[:19])
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

// waitDelivered waits until the agent's outbox is empty: every bundle
// delivered and receipted by the archive.
func (c *demoClient) waitDelivered(ctx context.Context) error {
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		r, err := c.do(ctx, "GET", "/v1/status", c.tokens["site-ops"], "", nil)
		if err != nil {
			return err
		}
		var st struct {
			Outbox int `json:"outbox"`
		}
		if r.code == http.StatusOK && json.Unmarshal(r.body, &st) == nil && st.Outbox == 0 {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return errors.New("demo: bundles not receipted by the archive within 60s (see agent.log and archive.log)")
}

// exportStatus asks the auditor's view of an export: journaled, sealed,
// sent or archived.
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
