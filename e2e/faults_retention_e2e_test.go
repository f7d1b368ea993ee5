package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edgeseal/edgeseal/agent"
	"github.com/edgeseal/edgeseal/bundle/custody"
	"github.com/edgeseal/edgeseal/bundle/wire"
)

// retentionKeep is the local retention of TestFaultsDeterministicRetention:
// long enough for the checkpoint fault and a restart to be over before
// the first exports are due, short enough for the test.
const retentionKeep = 12 * time.Second

// TestFaultsDeterministicRetention injects a failure into the agent's
// journal writes that are neither exports nor receipts, on an agent that
// is otherwise idle (no clients, seals on demand only), so that the
// failing commit is the one provoked:
//
//   - "agent seal checkpoint": every msync fails (EIO) and a seal is
//     asked for; the seal's only Badger commit is its checkpoint (the
//     TPM counter and the outbox entry are files), so the checkpoint
//     fails after the bundle was written to the outbox. The agent must
//     exit with the alarm, and the restarted agent must adopt the bundle
//     and deliver it (its exports archived).
//   - "agent local retention purge": with retention.local_payloads, every
//     msync fails once the exports are receipted and before they are due;
//     the next commit is the purge pass's retention.purge record. The
//     agent must exit with the alarm, and after the restart the payloads
//     must be purged (the record journaled, the bytes gone) and the
//     journal must scrub.
//
// Epoch changes (the journal's key rotation) have no fault case: they run
// only under `edgeseal agent rekey`, offline, where a failed commit fails
// the command.
func TestFaultsDeterministicRetention(t *testing.T) {
	needAgent(t)
	needStrace(t)
	a := newAgentDir(t, agentOpts{sealEvery: 1000, sealInterval: "1h", maxBody: "64 KiB"})
	trust := enrollFile(t, a)
	ar := startArchive(t, t.TempDir(), trust)
	appendFile(t, filepath.Join(a.dir, "agent.yaml"), fmt.Sprintf("sync:\n  broker: %s\n  archive_key: %s\nretention:\n  local_payloads: %s\n", ar.broker, ar.keyFile+".pub", retentionKeep))
	p := a.start(t, true)
	c := unixClient(a.socket)
	ids := []string{"ret-1", "ret-2"}
	start := time.Now()
	for i, id := range ids {
		body := fmt.Appendf(nil, `{"id":%q,"workflow":"invoices-daily","app":"n8n","classification":"internal","destination":"archive","data":%s}`, id, fmt.Sprintf(e2eInvoice, i+1))
		if r, err := do(t, c, "POST", "http://agent/v1/exports", tokN8N, "application/json", body); err != nil || r.status != http.StatusCreated {
			t.Fatalf("export %s: %d %s %v", id, r.status, r.body, err)
		}
	}
	wait := func(p *agentProc, what string, ok func() bool) {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		for !ok() {
			if time.Now().After(deadline) {
				t.Fatalf("%s: not after 60s\n%s\n%s", what, tail(p.stderr.String()), ar.logs())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	// alarmed waits for the agent to exit with status 1 and the alarm,
	// with at least one call failed; it returns how many failed and when
	// the first did.
	alarmed := func(f fault, p *agentProc, in *injector) (int, time.Time) {
		t.Helper()
		in.waitInjected(60*time.Second, p.exited)
		hit := time.Now()
		select {
		case <-p.exited:
		case <-time.After(60 * time.Second):
			t.Fatalf("%s: the agent still runs 60s after the fault\n%s", f, tail(p.stderr.String()))
		}
		n := in.injected()
		in.detach()
		if n == 0 || p.waitErr == nil || !strings.Contains(p.stderr.String(), "ALARM journal write failed") {
			t.Fatalf("%s: %d calls failed, exit %v\n%s", f, n, p.waitErr, tail(p.stderr.String()))
		}
		return n, hit
	}

	// The seal's checkpoint.
	f := fault{Name: "agent seal checkpoint", Target: "agent", Syscalls: []string{"msync"}, Errno: "EIO", When: 1, Plus: true, Fatal: true}
	in := inject(t, p.cmd.Process.Pid, f)
	r, err := do(t, c, "POST", "http://agent/v1/seal", tokOperator, "", nil)
	if err == nil && r.status/100 == 2 {
		t.Fatalf("%s: the seal was answered %d %s", f, r.status, r.body)
	}
	n, _ := alarmed(f, p, in)
	c.CloseIdleConnections()
	p = a.start(t, true)
	wait(p, "sealed exports archived after the restart", func() bool {
		for _, id := range ids {
			if exportState(t, c, id).Status != agent.StatusArchived {
				return false
			}
		}
		return true
	})
	adopted := strings.Contains(p.stderr.String(), "adopting sealed bundle whose checkpoint was not recorded")
	if strings.Contains(ar.logs(), "archive.fork") {
		t.Fatalf("%s: the archive saw a rewritten history\n%s", f, ar.logs())
	}
	t.Logf("%s: %d calls failed, seal answered %v %v; after the restart the bundle was adopted (%v) and archived", f, n, r.status, err, adopted)
	if time.Since(start) > retentionKeep-2*time.Second {
		t.Fatalf("the checkpoint case took %v: the exports may be purged before the purge fault is attached (retentionKeep %v)", time.Since(start), retentionKeep)
	}

	// The purge pass.
	for _, id := range ids {
		if exportState(t, c, id).PayloadPurged {
			t.Fatalf("%s purged before the purge fault", id)
		}
	}
	f = fault{Name: "agent local retention purge", Target: "agent", Syscalls: []string{"msync"}, Errno: "EIO", When: 1, Plus: true, Fatal: true}
	in = inject(t, p.cmd.Process.Pid, f)
	n, hit := alarmed(f, p, in)
	// The agent is idle: the first commit after the exports are due is
	// the purge pass's (retention.purge record, then the payload deletes).
	if after := hit.Sub(start); after < retentionKeep {
		t.Fatalf("%s: the first call failed %v after the exports, before they were due (%v): not the purge's\n%s", f, after, retentionKeep, tail(p.stderr.String()))
	}
	c.CloseIdleConnections()
	p = a.start(t, true)
	wait(p, "payloads purged after the restart", func() bool {
		for _, id := range ids {
			if !exportState(t, c, id).PayloadPurged {
				return false
			}
		}
		return true
	})
	p.stop()
	purges := checkPurged(t, a, ids)
	t.Logf("%s: %d calls failed, the first %v after the exports (due after %v); after the restart %d retention.purge records name the payloads, the bytes are gone, the journal scrubs", f, n, hit.Sub(start).Round(time.Millisecond), retentionKeep, purges)
	ar.stop(t)
}

// checkPurged opens the stopped agent's journal: it must scrub, hold each
// export of ids once, and a retention.purge record naming each one's
// payload, whose bytes are gone. It returns how many purge records
// there are.
func checkPurged(t *testing.T, a *agentDir, ids []string) int {
	t.Helper()
	ctx := context.Background()
	j := a.openJournal(t)
	defer j.Close()
	if err := j.Scrub(ctx, nil); err != nil {
		t.Fatalf("the journal does not scrub: %v", err)
	}
	digests := map[string]string{} // export id -> journaled payload digest
	named := map[string]bool{}
	purges := 0
	err := j.Records(ctx, 0, j.Size(), func(_ uint64, raw []byte) error {
		r, err := custody.ParseRecord(raw)
		if err != nil {
			return err
		}
		switch r.Type {
		case custody.TypeExport:
			b, err := r.ExportBody()
			if err != nil {
				return err
			}
			if _, dup := digests[b.ExportID]; dup {
				return fmt.Errorf("export %s journaled twice", b.ExportID)
			}
			d := b.Payload.Digest
			if b.PayloadCipher != nil {
				d = b.PayloadCipher.Digest
			}
			digests[b.ExportID] = d
		case custody.TypeRetentionPurge:
			var pb custody.PurgeBody
			if err := json.Unmarshal(r.Body, &pb); err != nil {
				return err
			}
			purges++
			for _, d := range pb.Payloads {
				named[d] = true
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		d, ok := digests[id]
		if !ok || !named[d] {
			t.Fatalf("export %s (payload %s) journaled %v, named by a purge record %v", id, d, ok, named[d])
		}
		h, err := wire.ParseHash(d)
		if err != nil {
			t.Fatal(err)
		}
		if present, _, err := j.PayloadState(h); err != nil || present {
			t.Fatalf("payload of %s still present (%v)", id, err)
		}
	}
	return purges
}
