//go:build cgo

package main

import (
	"context"
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"

	"github.com/edgeseal/edgeseal/agent"
	"github.com/edgeseal/edgeseal/bundle/custody"
	"github.com/edgeseal/edgeseal/bundle/trustfile"
	"github.com/edgeseal/edgeseal/bundle/wire"
	"github.com/edgeseal/edgeseal/store"
	"github.com/edgeseal/edgeseal/tpm"
	"github.com/edgeseal/edgeseal/tpm/simulator"
)

// agentChain seals bundles with the agent itself: a journal (store), the
// agent core and the in-process TPM 2.0 reference simulator, as `edgeseal
// agent` does on a device. It returns the trust file and the bundle files
// in order.
func agentChain(ctx context.Context, site, device string, bundles int) (trust []byte, out [][]byte, err error) {
	dir, err := os.MkdirTemp("", "corpusgen-agent-")
	if err != nil {
		return nil, nil, err
	}
	defer os.RemoveAll(dir)
	t, err := tpm.Open(ctx, "simulator:"+filepath.Join(dir, "sim"), tpm.Options{StateDir: filepath.Join(dir, "tpm"), Simulator: simulator.Open, Create: true})
	if err != nil {
		return nil, nil, err
	}
	defer t.Close()
	key, err := t.DataKey(ctx)
	if err != nil {
		return nil, nil, err
	}
	j, err := store.Open(ctx, store.Options{Dir: filepath.Join(dir, "journal"), EncryptionKey: key})
	if err != nil {
		return nil, nil, err
	}
	defer j.Close()
	core, err := agent.Open(ctx, agent.Options{Site: site, Device: device}, j, t)
	if err != nil {
		return nil, nil, err
	}
	for b := range bundles {
		for i := range 3 {
			data := fmt.Appendf(nil, "month,total\n2026-%02d,%d\n", b*3+i+1, 1000+b*3+i)
			if _, err := core.Export(ctx, agent.Export{
				Actor:    custody.Actor{Kind: "principal", ID: "n8n-reports", Via: "api"},
				ExportID: fmt.Sprintf("report-%d-%d", b, i), App: "n8n", Workflow: "monthly-report", Purpose: "audit",
				Schema: "report@2", Classification: "internal", Retention: "7y", Destination: "archive",
				Policy: wire.FormatHash(sha256.Sum256([]byte("policy v1"))), MediaType: "text/csv", Data: data,
			}); err != nil {
				return nil, nil, err
			}
		}
		res, err := core.Seal(ctx)
		if err != nil {
			return nil, nil, err
		}
		if res == nil {
			return nil, nil, fmt.Errorf("agent sealed nothing")
		}
		raw, ok, err := j.OutboxGet(ctx, res.ID)
		if err != nil || !ok {
			return nil, nil, fmt.Errorf("outbox %s: %v (found %v)", res.ID, err, ok)
		}
		out = append(out, raw)
	}
	tr, err := trustfile.NewTrust(site, device, agent.BundleIdentity(t.Identity()))
	if err != nil {
		return nil, nil, err
	}
	if trust, err = tr.Marshal(); err != nil {
		return nil, nil, err
	}
	return trust, out, nil
}
