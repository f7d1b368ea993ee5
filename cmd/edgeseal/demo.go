package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"github.com/edgeseal/edgeseal/agent"
	"github.com/edgeseal/edgeseal/bundle"
	"github.com/edgeseal/edgeseal/internal/fsutil"
	"github.com/edgeseal/edgeseal/store"
)

// sampleExport is one export a no-code app hands over in the demo.
type sampleExport struct {
	app, workflow, purpose, schema, class, dest, media, principal string
	data                                                          string
}

var demoBatches = [][]sampleExport{
	{
		{"n8n", "nightly-batch-report", "quality audit", "batch-report@2", "internal", "qa-share", "text/csv", "n8n-line-3",
			"batch,line,units,rejects\nB-1042,3,1200,4\nB-1043,3,1180,2\n"},
		{"Node-RED", "sensor-export", "regulatory retention", "sensor-series@1", "restricted", "regulator", "application/json", "nodered-plc",
			`{"sensor":"T-17","unit":"C","values":[71.2,71.4,71.1]}`},
		{"Appsmith", "deviation-form", "CAPA record", "deviation@3", "confidential", "qms", "application/json", "appsmith-qa",
			`{"deviation":"DV-2201","severity":"minor","signedBy":"j.doe"}`},
	},
	{
		{"Budibase", "patient-intake", "clinical record", "intake@1", "confidential", "ehr-archive", "application/json", "budibase-clinic",
			`{"visit":"V-99812","consent":true,"form":"intake-v1"}`},
		{"NocoDB", "inventory-dump", "stock reconciliation", "inventory@5", "internal", "erp", "text/csv", "nocodb-stores",
			"sku,qty,bin\nA-100,40,R1\nA-101,12,R4\n"},
	},
	{
		{"desktop-flow", "monthly-pdf", "management report", "monthly-report@1", "internal", "board", "application/pdf", "rpa-desk",
			"%PDF-1.4\n% edgeseal demo report\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"},
		{"n8n", "nightly-batch-report", "quality audit", "batch-report@2", "internal", "qa-share", "text/csv", "n8n-line-3",
			"batch,line,units,rejects\nB-1044,3,1210,1\n"},
	},
}

// cmdDemo runs the agent core on the in-process simulated TPM: it journals
// sample exports (and one rejected attempt), seals them into bundles, writes
// the bundles and the device trust file, verifies the chain and prints a
// summary. Everything stays in the demo directory for verifying by hand.
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
	for _, sub := range []string{"tpm", "journal", "bundles", "DEVICE.json"} {
		if err := os.RemoveAll(filepath.Join(*dir, sub)); err != nil {
			return err
		}
	}
	bundleDir := filepath.Join(*dir, "bundles")
	if err := os.MkdirAll(bundleDir, 0o755); err != nil {
		return err
	}
	const site, device = "plant-7", "appliance-1"
	fmt.Fprintf(stdout, "edgeseal demo: TPM = in-process simulator (INSECURE: for demos and tests only)\n\n")

	t, err := openTPM(ctx, "simulator:"+filepath.Join(*dir, "tpm"), filepath.Join(*dir, "tpm"), log)
	if err != nil {
		return err
	}
	defer t.Close()
	key, err := t.DataKey(ctx)
	if err != nil {
		return err
	}
	j, err := store.Open(ctx, store.Options{Dir: filepath.Join(*dir, "journal"), EncryptionKey: key, Logger: log})
	if err != nil {
		return err
	}
	defer j.Close()
	core, err := agent.Open(ctx, agent.Options{Site: site, Device: device, Logger: log}, j, t)
	if err != nil {
		return err
	}
	trust, err := bundle.NewTrust(site, device, agent.BundleIdentity(t.Identity()))
	if err != nil {
		return err
	}
	trustRaw, err := trust.Marshal()
	if err != nil {
		return err
	}
	trustPath := filepath.Join(*dir, "DEVICE.json")
	if err := fsutil.WriteFileAtomic(trustPath, trustRaw, 0o644); err != nil {
		return err
	}

	tw := tabwriter.NewWriter(stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SEQ\tAPP\tWORKFLOW\tCLASS\tBYTES\tPAYLOAD DIGEST\tBUNDLE")
	var bundles []string
	n := 0
	for bi, batch := range demoBatches {
		var lines []string
		for _, e := range batch {
			n++
			rc, err := core.Export(ctx, agent.Export{
				Actor:    bundle.Actor{Kind: "principal", ID: e.principal, Via: "demo"},
				ExportID: fmt.Sprintf("exp-%04d", n), App: e.app, Workflow: e.workflow, Purpose: e.purpose,
				Schema: e.schema, Classification: e.class, Retention: "7y", Destination: e.dest,
				Policy: bundle.FormatHash([32]byte{}), MediaType: e.media, Data: []byte(e.data),
			})
			if err != nil {
				return err
			}
			lines = append(lines, fmt.Sprintf("%d\t%s\t%s\t%s\t%d\t%s…", rc.Seq, e.app, e.workflow, e.class, len(e.data), rc.Digest[:19]))
		}
		if bi == 1 {
			// Attempts are custody too: a rejected export is journaled without its payload.
			a, err := core.Append(ctx, bundle.TypeExportRejected, bundle.Actor{Kind: "principal", ID: "n8n-line-3", Via: "demo"},
				bundle.RejectedBody{ExportID: "exp-rejected-1", App: "n8n", Workflow: "payroll-dump",
					Policy: bundle.FormatHash([32]byte{}), Reason: "workflow not allowed for principal"}, nil)
			if err != nil {
				return err
			}
			lines = append(lines, fmt.Sprintf("%d\tn8n\tpayroll-dump\t(rejected)\t0\t-", a.Seq))
		}
		res, err := core.Seal(ctx)
		if err != nil {
			return err
		}
		name := filepath.Join(bundleDir, fmt.Sprintf("%03d-%s.bundle.tar", bi+1, res.ID))
		if err := fsutil.WriteFileAtomic(name, res.Bundle, 0o644); err != nil {
			return err
		}
		bundles = append(bundles, name)
		for _, l := range lines {
			fmt.Fprintf(tw, "%s\t%s\n", l, filepath.Base(name))
		}
	}
	tw.Flush()

	fmt.Fprintf(stdout, "\nverifying the chain offline with %s:\n", trustPath)
	var prev *bundle.State
	tw = tabwriter.NewWriter(stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "BUNDLE\tRECORDS\tTREE SIZE\tNV COUNTER\tCHECKS\tRESULT")
	failed := 0
	for _, p := range bundles {
		b, err := readBundle(p)
		if err != nil {
			return err
		}
		rep := bundle.Verify(b, trust, prev)
		ok, total := 0, len(rep.Checks)
		for _, c := range rep.Checks {
			if c.OK {
				ok++
			} else {
				fmt.Fprintf(stdout, "  FAIL %s: %s\n", c.Name, c.Detail)
			}
		}
		verdict := "VERIFIED"
		if !rep.OK() {
			verdict, failed = "NOT VERIFIED", failed+1
		} else {
			prev = rep.State
		}
		recs, err := b.Records()
		if err != nil {
			return err
		}
		_, stmt, err := b.Statement()
		if err != nil {
			return err
		}
		cp, err := bundle.ParseCheckpoint([]byte(stmt.Predicate.Checkpoint))
		if err != nil {
			return err
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d/%d\t%s\n", filepath.Base(p), len(recs), cp.Size, stmt.Predicate.Counter, ok, total, verdict)
	}
	tw.Flush()
	if failed > 0 {
		return fmt.Errorf("demo: %d bundle(s) did not verify", failed)
	}
	fmt.Fprintf(stdout, "\n%d exports journaled, %d bundles sealed with the TPM key %s… and verified.\n",
		n, len(bundles), trust.KeyID[:19])
	fmt.Fprintf(stdout, "Verify by hand:\n  go run ./cmd/edgeseal verify %s --trust %s\n",
		strings.Join(bundles, " "), trustPath)
	return nil
}
