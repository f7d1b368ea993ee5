package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edgeseal/edgeseal/agent"
	"github.com/edgeseal/edgeseal/bundle"
	"github.com/edgeseal/edgeseal/bundle/custody"
	"github.com/edgeseal/edgeseal/bundle/wire"
)

// TestLocalRetentionE2E: an agent with retention.local_payloads 2s and a
// running archive. Two exports are sealed and receipted; past the local
// retention GET /v1/exports/{id} says their payloads were purged; the next
// bundle carries the retention.purge record naming them and not their
// bytes; `edgeseal verify` accepts the archived chain.
func TestLocalRetentionE2E(t *testing.T) {
	needAgent(t)
	a := newAgentDir(t, agentOpts{sealEvery: 1000, sealInterval: "1h", maxBody: "64 KiB"})
	trust := enrollFile(t, a)
	adir := t.TempDir()
	ar := startArchive(t, adir, trust)
	appendFile(t, filepath.Join(a.dir, "agent.yaml"), fmt.Sprintf("sync:\n  broker: %s\n  archive_key: %s\nretention:\n  local_payloads: 2s\n", ar.broker, ar.keyFile+".pub"))
	p := a.start(t, true)
	c := unixClient(a.socket)
	export := func(id string, n int) {
		t.Helper()
		body := fmt.Appendf(nil, `{"id":%q,"workflow":"invoices-daily","app":"n8n","classification":"internal","destination":"archive","data":%s}`, id, fmt.Sprintf(e2eInvoice, n))
		if r, err := do(t, c, "POST", "http://agent/v1/exports", tokN8N, "application/json", body); err != nil || r.status != http.StatusCreated {
			t.Fatalf("export %s: %d %s %v", id, r.status, r.body, err)
		}
	}
	seal := func() {
		t.Helper()
		if r, err := do(t, c, "POST", "http://agent/v1/seal", tokOperator, "", nil); err != nil || r.status/100 != 2 {
			t.Fatalf("seal: %d %s %v", r.status, r.body, err)
		}
	}
	wait := func(what string, ok func() bool) {
		t.Helper()
		deadline := time.Now().Add(90 * time.Second)
		for !ok() {
			if time.Now().After(deadline) {
				t.Fatalf("%s: not after 90s\n%s\n%s", what, p.stderr, ar.logs())
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	export("old-1", 1)
	export("old-2", 2)
	seal()
	wait("archived and purged", func() bool {
		for _, id := range []string{"old-1", "old-2"} {
			if info := exportState(t, c, id); info.Status != agent.StatusArchived || !info.PayloadPurged {
				return false
			}
		}
		return true
	})
	export("new-1", 3)
	seal()
	wait("new-1 archived", func() bool { return exportState(t, c, "new-1").Status == agent.StatusArchived })
	if info := exportState(t, c, "new-1"); info.PayloadPurged {
		t.Fatalf("new-1 purged at once: %+v", info)
	}
	p.stop()
	ar.stop(t)

	// The archived chain, in log order.
	purges := 0
	files, _ := archivedChain(t, filepath.Join(adir, "data"), func(idx uint64, b *bundle.Bundle, recs []*custody.Record) error {
		for _, r := range recs {
			if r.Type != custody.TypeRetentionPurge {
				continue
			}
			var pb custody.PurgeBody
			if err := json.Unmarshal(r.Body, &pb); err != nil || len(pb.Payloads) != 2 || !strings.Contains(pb.Reason, "local retention") {
				return fmt.Errorf("retention.purge body %s: %v", r.Body, err)
			}
			for _, pd := range pb.Payloads {
				if _, in := b.Files["data/payloads/"+strings.TrimPrefix(pd, wire.HashPrefix)]; in {
					return fmt.Errorf("bundle %d carries the purged payload %s", idx, pd)
				}
			}
			purges++
		}
		return nil
	})
	if purges != 1 || len(files) < 2 {
		t.Fatalf("%d retention.purge records in %d archived bundles", purges, len(files))
	}
	vout, code := runCmd(t, append([]string{"verify", "--trust", trust}, files...)...)
	if code != 0 || strings.Count(vout, "  VERIFIED") != len(files) {
		t.Fatalf("verify the chain: exit %d\n%s", code, vout)
	}
}
