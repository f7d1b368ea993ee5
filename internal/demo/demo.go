// Package demo is `edgeseal demo`: the whole job on embedded defaults in
// one process. It starts an archive with its embedded MQTT broker (TLS with
// client certificates of a CA of its own), enrolls and approves a device on
// the in-process simulated TPM, runs the agent, hands it sample exports of
// no-code apps through its unix-socket API (the typed client of agent/api)
// and its spool folder, good ones and refused ones, seals after each round,
// waits until the archive has receipted every bundle, then verifies the
// receipts and the bundles offline as one chain and prints each export's
// journey. Everything stays in the demo folder for verifying by hand.
//
// The daemons and the few operator commands the demo stands in for are
// given to it in Options, so that it runs the same code as the binary.
package demo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/edgeseal/edgeseal/agent/agentd"
	"github.com/edgeseal/edgeseal/agent/api"
	"github.com/edgeseal/edgeseal/agent/config"
	"github.com/edgeseal/edgeseal/tpm"
)

// RecoveryKeyFile is the demo's operator recovery key, in the demo folder
// (its public half is RecoveryKeyFile.pub).
const RecoveryKeyFile = "recovery.key"

// Options are the demo's folder and output, and the TPM simulator the
// binary links in.
type Options struct {
	// Dir is where the demo leaves the journal, TPM state, bundles,
	// receipts, archive and DEVICE.json; what an earlier run left there
	// is removed first.
	Dir string
	// Stdout gets the demo's story and summary; the agent and the
	// archive log to agent.log and archive.log in Dir.
	Stdout io.Writer

	// Simulator opens the in-process TPM simulator; nil (a build
	// without cgo) refuses to run.
	Simulator func(dir string) (tpm.Transport, error)
}

// export is one export a no-code app hands over in the demo.
type export struct {
	id, principal, app, workflow, purpose, class, dest, media string
	data                                                      string
	spool                                                     bool // dropped in the spool folder, not posted
}

// rounds are three rounds of exports; each round ends with a seal.
var rounds = [][]export{
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
	e       export
	outcome string // "201", "422 schema_violation", "spool: done", ...
	seq     string
	status  string // from GET /v1/exports/{id}
}

// Rounds is how many rounds of exports the demo runs: each ends with a
// seal, so the demo leaves as many bundles.
func Rounds() int { return len(rounds) }

// previousRun is what an earlier run left in the demo's folder and a new
// one makes anew (the recovery key and the TLS files are made anew or kept
// by the steps that use them).
var previousRun = []string{"tpm", "journal", "bundles", "receipts", "archive", "spool", "etc", "DEVICE.json", "tokens.txt",
	"agent.log", "archive.log", "pcr-key", "pcr-key.pub", "pcr-authorization.json", EvidenceDir, "policy-changes.json"}

// clean removes from dir what an earlier run left there: a demo starts
// from nothing so its summary tells one story (and a second run does not
// fail on the first one's evidence pack).
func clean(dir string) error {
	for _, sub := range previousRun {
		if err := os.RemoveAll(filepath.Join(dir, sub)); err != nil {
			return err
		}
	}
	return nil
}

// Run runs the demo in o.Dir and prints its story and summary to
// o.Stdout. It fails when a bundle does not verify.
func Run(ctx context.Context, o Options) error {
	if o.Simulator == nil {
		return errors.New("demo: this binary was built without cgo, so it has no TPM simulator")
	}
	dir, stdout := o.Dir, o.Stdout
	if err := clean(dir); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Join(dir, "spool"), 0o755); err != nil {
		return err
	}
	sockDir, err := os.MkdirTemp("", "edgeseal-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(sockDir)
	socket := filepath.Join(sockDir, "agent.sock")
	logFile, err := os.Create(filepath.Join(dir, "agent.log"))
	if err != nil {
		return err
	}
	defer logFile.Close()
	agentLog := slog.New(slog.NewTextHandler(logFile, &slog.HandlerOptions{Level: slog.LevelInfo}))
	archiveLogFile, err := os.Create(filepath.Join(dir, "archive.log"))
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
	tf, err := writeTLS(dir, siteName+"/"+deviceName)
	if err != nil {
		return err
	}
	da, err := startArchive(ctx, o, dir, tf, archiveLog)
	if err != nil {
		return err
	}
	defer da.stop()
	cfgPath, tokens, err := writeSite(dir, socket, da.brk.URL(), da.keyFile+".pub", tf)
	if err != nil {
		return err
	}
	cfg, err := config.Load(cfgPath)
	if err != nil {
		return err
	}
	trust, err := da.enroll(ctx, o, cfg.Site, cfg.Device, cfg.TPM, cfg.TPMStateDir, dir)
	if err != nil {
		return err
	}

	fmt.Fprintf(stdout, "edgeseal demo in %s\n", dir)
	fmt.Fprintf(stdout, "  archive: embedded MQTT broker on %s, key %s…, device %s enrolled and approved\n", da.brk.URL(), da.a.KeyID()[:19], trust.DeviceName())
	fmt.Fprintf(stdout, "  broker: TLS only, every client needs a certificate of the demo's CA (%s); the device's is %s\n", tf.CA, tf.ClientCert)
	fmt.Fprintf(stdout, "  agent: TPM = in-process simulator (INSECURE: demos and tests only), API on %s, spool folder %s\n", socket, cfg.Spool.Dir)
	fmt.Fprintf(stdout, "  recovery: the journal's data key is also wrapped to the operator recovery key %s (in production it stays offline)\n", filepath.Join(dir, RecoveryKeyFile))
	fmt.Fprintf(stdout, "  logs: %s, %s\n\n", logFile.Name(), archiveLogFile.Name())

	actx, stopAgent := context.WithCancel(ctx)
	agentDone := make(chan error, 1)
	go func() { agentDone <- agentd.Run(actx, cfg, agentd.Options{Logger: agentLog, Simulator: o.Simulator}) }()
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

	ac, err := api.NewClient(api.ClientOptions{Socket: socket, Timeout: 30 * time.Second})
	if err != nil {
		return err
	}
	defer ac.CloseIdleConnections()
	c := &client{api: ac, tokens: tokens}
	if err := c.waitReady(ctx, agentDone); err != nil {
		return err
	}
	var journeys []*journey
	for round, exports := range rounds {
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
			code, err := c.postAnonymous(ctx, []byte(`{"workflow":"x","app":"curl","classification":"internal","destination":"usb","data":{}}`))
			if err != nil {
				return err
			}
			journeys = append(journeys, &journey{e: export{id: "-", principal: "(no token)", app: "curl", workflow: "x"}, outcome: fmt.Sprint(code)})
		}
		if err := c.seal(ctx); err != nil {
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
	got, err := da.collect(ctx, o, agentPaths{tpm: cfg.TPM, tpmState: cfg.TPMStateDir, journal: filepath.Join(cfg.DataDir, "journal"), device: cfg.DeviceID()}, dir)
	if err != nil {
		return err
	}
	// An auditor's evidence pack of one archived export, built by the
	// archive through its read API (and journaled there as a read).
	var packDir, packed string
	for _, j := range journeys {
		if j.outcome == "201" && j.status == "archived" {
			packed = j.e.id
			break
		}
	}
	if packed != "" {
		if packDir, err = packOne(ctx, da.api, da.auditPwd, trust.DeviceName(), packed, trust, dir); err != nil {
			return err
		}
	}
	if err := da.stop(); err != nil {
		return fmt.Errorf("demo: archive: %w", err)
	}
	sort.Slice(got, func(i, k int) bool { return got[i].outbox < got[k].outbox })
	if err := verifyChain(stdout, journeys, got, trust); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "\nThe archive and the agent are stopped now. To run them again, each in a terminal of its own\n")
	fmt.Fprintf(stdout, "(the archive first: the agent delivers its bundles to it):\n")
	fmt.Fprintf(stdout, "  go run ./cmd/edgeseal archive --config %s\n", filepath.Join(dir, "archive", "archive.yaml"))
	fmt.Fprintf(stdout, "  go run ./cmd/edgeseal agent --config %s\n", cfgPath)
	fmt.Fprintf(stdout, "The agent's API is on %s, the tokens for trying it are in %s.\n", socket, filepath.Join(dir, "tokens.txt"))
	fmt.Fprintf(stdout, "Verify by hand:\n  go run ./cmd/edgeseal verify %s/bundles/*.bundle.tar --trust %s/DEVICE.json\n", dir, dir)
	fmt.Fprintf(stdout, "Once archived, an export's status (GET /v1/exports/ID) names its bundle in delivery.bundle\n")
	fmt.Fprintf(stdout, "(sha256:HEX); the archive keeps it as %s/archive/objects/sha256/<first two of HEX>/HEX.\n", dir)
	fmt.Fprintf(stdout, "Verify such a later bundle after the demo's last one:\n  go run ./cmd/edgeseal verify --trust %s/DEVICE.json --previous %s BUNDLE\n",
		dir, filepath.Join(dir, "bundles", filepath.Base(got[len(got)-1].path)))
	if packDir != "" {
		fmt.Fprintf(stdout, "An auditor's evidence pack of export %s (built by the archive, in its access log) is in %s:\n", packed, packDir)
		fmt.Fprintf(stdout, "  go run ./cmd/edgeseal verify %s --trust %s --archive-key %s\n  or step by step with standard tools: %s\n",
			packDir, filepath.Join(dir, "DEVICE.json"), da.keyFile+".pub", filepath.Join(packDir, "VERIFY.md"))
	}
	fmt.Fprintf(stdout, "While the archive runs, its dashboard is on http://%s/\n", da.api)
	fmt.Fprintf(stdout, "  sign in as %s, password %s (also in %s)\n", AuditorUser, da.auditPwd, filepath.Join(dir, AuditorFile))
	return nil
}
