package e2e

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edgeseal/edgeseal/agent"
	"github.com/edgeseal/edgeseal/archive"
	"github.com/edgeseal/edgeseal/bundle"
	"github.com/edgeseal/edgeseal/bundle/archivesig"
	"github.com/edgeseal/edgeseal/bundle/custody"
	"github.com/edgeseal/edgeseal/bundle/wire"
	"github.com/edgeseal/edgeseal/internal/soaktest"
	"github.com/edgeseal/edgeseal/internal/testenv"
	"github.com/edgeseal/edgeseal/sync/mqtttest"
)

// Disruptions of the outage test.
const (
	outageClients       = 8
	outageBrokerStops   = 20
	outageArchiveKills  = 10
	outageDrainDeadline = 90 * time.Second
)

// TestSyncOutage: a real Mosquitto, a real
// `edgeseal agent` and a real `edgeseal archive` process. While 8 clients
// keep exporting through the agent's API, Mosquitto is stopped and
// restarted 20 times and the archive is SIGKILLed (and restarted) 10
// times, in a random order. Afterwards every export answered 201 is in
// exactly one bundle of the archive log, the bundles follow each other
// in the device's sequence with no gap and no repeat, each bundle's
// receipt is journaled on the agent exactly once, and the outbox is
// empty. With EDGESEAL_OUTAGE_LOGS=DIR a run that does not drain leaves
// the agent's, the archives' and mosquitto's logs in DIR.
func TestSyncOutage(t *testing.T) {
	needAgent(t)
	if mqtttest.Find() == "" {
		testenv.Missing(t, "mosquitto not installed")
	}
	scale := soaktest.Scale(t) // make soak: more disruptions
	brokerStops, archiveKills := outageBrokerStops*scale, outageArchiveKills*scale
	start := time.Now()
	ctx := t.Context()
	brk := mqtttest.Start(t, nil)

	// The archive: its key, the agent's device enrolled and approved.
	adir := t.TempDir()
	acfg := writeArchiveConfig(t, adir, brk.URL, "outage-archive")
	keyFile, akey := archiveKeyOf(t, adir)
	a := newAgentDir(t, agentOpts{sealEvery: 100, sealInterval: "250ms", maxBody: "64 KiB"})
	dev := enrollFile(t, a)
	enrollDevices(t, acfg, dev)
	appendFile(t, filepath.Join(a.dir, "agent.yaml"), fmt.Sprintf("sync:\n  broker: %s\n  archive_key: %s\n  resend_after: 5s\n", brk.URL, keyFile+".pub"))

	ar := startArchiveProc(t, acfg)
	var archiveLogs strings.Builder // of the killed archive processes
	ag := a.start(t, true)
	sock := unixClient(a.socket)

	// 8 clients export until told to stop; the agent stays up throughout
	// (the simulated TPM's clock starts over with its process), so every
	// export is answered 201.
	led := startExporter(t, a, outageClients, nil, func(c, n int) string { return fmt.Sprintf("c%d-%06d", c, n) },
		func() time.Duration { return time.Duration(2+rand.IntN(8)) * time.Millisecond })

	// The disruptions, shuffled: broker stopped (SIGTERM, its sessions
	// persisted) and started again; archive SIGKILLed and started again.
	events := make([]bool, 0, brokerStops+archiveKills) // true: broker
	for range brokerStops {
		events = append(events, true)
	}
	for range archiveKills {
		events = append(events, false)
	}
	rand.Shuffle(len(events), func(i, k int) { events[i], events[k] = events[k], events[i] })
	for i, isBroker := range events {
		time.Sleep(time.Duration(300+rand.IntN(900)) * time.Millisecond) // traffic flows
		if isBroker {
			brk.Stop()
			time.Sleep(time.Duration(100+rand.IntN(700)) * time.Millisecond)
			brk.Restart()
		} else {
			ar.kill()
			archiveLogs.WriteString(ar.stderr.String())
			time.Sleep(time.Duration(rand.IntN(400)) * time.Millisecond)
			ar = startArchiveProc(t, acfg)
		}
		n := led.count()
		if n < 0 {
			break
		}
		t.Logf("event %d (%s): %d exports acknowledged so far", i+1, map[bool]string{true: "broker", false: "archive"}[isBroker], n)
	}
	acked, maxSeq := led.end(t, ag.stderr.String())
	disrupted := time.Since(start)

	// The backlog drains: every acknowledged export sealed and the
	// outbox empty.
	var st agent.Status
	deadline := time.Now().Add(outageDrainDeadline)
	for {
		rep, err := do(t, sock, "GET", "http://agent/v1/status", tokAuditor, "", nil)
		if err == nil && rep.status == http.StatusOK && json.Unmarshal(rep.body, &st) == nil && st.Outbox == 0 && st.LastSeal != nil && st.LastSeal.Size > maxSeq {
			break
		}
		if time.Now().After(deadline) {
			if d := os.Getenv("EDGESEAL_OUTAGE_LOGS"); d != "" {
				_ = os.WriteFile(filepath.Join(d, "agent.log"), []byte(ag.stderr.String()), 0o644)
				_ = os.WriteFile(filepath.Join(d, "archive.log"), []byte(archiveLogs.String()+ar.stderr.String()), 0o644)
				_ = os.WriteFile(filepath.Join(d, "mosquitto.log"), []byte(brk.Log()), 0o644)
			}
			t.Fatalf("outbox not drained %v after the last disruption: %d %s %v\nagent:\n%s\narchive:\n%s", outageDrainDeadline, rep.status, rep.body, err, tail(ag.stderr.String()), tail(ar.stderr.String()))
		}
		time.Sleep(100 * time.Millisecond)
	}
	drained := time.Since(start)
	// Killed, not stopped: a clean stop would seal the delivery records
	// journaled since, a bundle that would wait in the outbox.
	ag.kill()
	ar.stop(t)

	checkOutageEnd(ctx, t, a, filepath.Join(adir, "data"), akey, acked)
	t.Logf("%d broker stops, %d archive kills, %d clients: %d exports acknowledged; disruptions over after %v, drained after %v",
		brokerStops, archiveKills, outageClients, len(acked), disrupted.Round(time.Millisecond), drained.Round(time.Millisecond))
}

func tail(s string) string {
	if len(s) > 6000 {
		return "..." + s[len(s)-6000:]
	}
	return s
}

// checkOutageEnd reads the stopped agent's journal and the stopped
// archive and checks the end state of TestSyncOutage.
func checkOutageEnd(ctx context.Context, t *testing.T, a *agentDir, archiveData string, akey ed25519.PrivateKey, acked map[string]uint64) {
	t.Helper()
	pub := akey.Public().(ed25519.PublicKey)
	keyID := archive.KeyID(pub)

	// The agent: export records, the outbox, the journaled receipts.
	j := a.openJournal(t)
	exportSeq := map[string]uint64{} // export id -> seq in the agent journal
	receiptsByBundle := map[string]int{}
	err := j.Records(ctx, 0, j.Size(), func(seq uint64, raw []byte) error {
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
			if _, dup := exportSeq[b.ExportID]; dup {
				return fmt.Errorf("export %s journaled twice", b.ExportID)
			}
			exportSeq[b.ExportID] = seq
		case custody.TypeDeliveryReceipt:
			var d agent.DeliveryBody
			if err := json.Unmarshal(r.Body, &d); err != nil {
				return err
			}
			receiptsByBundle[d.Bundle]++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var left []string
	if err := j.Outbox(ctx, func(id string, _ []byte) error { left = append(left, id); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(left) != 0 {
		t.Errorf("outbox not empty: %v", left)
	}
	receipts, err := agent.ReadReceipts(ctx, j)
	if err != nil {
		t.Fatal(err)
	}
	receiptOf := map[string]*archivesig.Receipt{} // bundle digest -> receipt
	for id, raw := range receipts {
		rc, err := archivesig.VerifyReceipt(raw, keyID, pub)
		if err != nil {
			t.Fatalf("receipt of %s: %v", id, err)
		}
		receiptOf[rc.BundleDigest] = rc
	}
	for d, n := range receiptsByBundle {
		if n != 1 {
			t.Errorf("bundle %s: %d delivery.receipt records on the agent", d, n)
		}
	}

	// The archive: its log in order, each bundle from the object store,
	// its records chained after the previous bundle's.
	objs, err := archive.NewFSStore(filepath.Join(archiveData, "objects"))
	if err != nil {
		t.Fatal(err)
	}
	inArchive := map[string]int{} // export id -> times in an archived bundle
	var next uint64               // the device seq the next bundle starts at
	var lastSize uint64
	var logSize uint64
	err = archiveLogRecords(t, archiveData, func(idx uint64, rec []byte) error {
		logSize = idx + 1
		var e archivesig.ReceiptEntry
		if err := json.Unmarshal(rec, &e); err != nil {
			return err
		}
		if e.Device != "e2e-site/dev-1" {
			return fmt.Errorf("log %d: device %s", idx, e.Device)
		}
		rc := receiptOf[e.BundleDigest]
		if rc == nil {
			return fmt.Errorf("log %d: bundle %s has no receipt journaled on the agent", idx, e.BundleDigest)
		}
		if rc.LogIndex != idx || rc.CheckpointSize != e.CheckpointSize {
			return fmt.Errorf("log %d: the agent's receipt says index %d, size %d; the log size %d", idx, rc.LogIndex, rc.CheckpointSize, e.CheckpointSize)
		}
		d, err := wire.ParseHash(e.BundleDigest)
		if err != nil {
			return err
		}
		raw, err := objs.Get(ctx, d)
		if err != nil {
			return fmt.Errorf("log %d: %w", idx, err)
		}
		if sha256.Sum256(raw) != d {
			return fmt.Errorf("log %d: stored bytes do not match %s", idx, e.BundleDigest)
		}
		b, err := bundle.Read(bytes.NewReader(raw), bundle.DefaultLimits)
		if err != nil {
			return fmt.Errorf("log %d: %w", idx, err)
		}
		recs, err := b.Records()
		if err != nil {
			return fmt.Errorf("log %d: %w", idx, err)
		}
		for _, rr := range recs {
			r, err := custody.ParseRecord(rr)
			if err != nil {
				return fmt.Errorf("log %d: %w", idx, err)
			}
			if r.Seq != next {
				return fmt.Errorf("log %d: record seq %d, want %d (out of order, gap or repeat)", idx, r.Seq, next)
			}
			next++
			if r.Type == custody.TypeExport {
				eb, err := r.ExportBody()
				if err != nil {
					return err
				}
				inArchive[eb.ExportID]++
			}
		}
		if e.CheckpointSize != next || e.CheckpointSize <= lastSize {
			return fmt.Errorf("log %d: checkpoint size %d after %d, records end at %d", idx, e.CheckpointSize, lastSize, next)
		}
		lastSize = e.CheckpointSize
		return nil
	})
	if err != nil {
		t.Fatalf("archive log: %v", err)
	}
	if uint64(len(receiptOf)) != logSize {
		t.Errorf("%d receipts journaled on the agent, %d bundles in the archive log", len(receiptOf), logSize)
	}
	missing := 0
	for id, seq := range acked {
		if exportSeq[id] != seq {
			t.Errorf("export %s answered seq %d, journaled at %d", id, seq, exportSeq[id])
		}
		if n := inArchive[id]; n != 1 {
			missing++
			if missing <= 10 {
				t.Errorf("acknowledged export %s (seq %d) is in the archive %d times", id, seq, n)
			}
		}
	}
	if missing > 0 {
		t.Errorf("%d of %d acknowledged exports not in the archive exactly once", missing, len(acked))
	}
	if len(acked) == 0 {
		t.Error("no export acknowledged: the load did not run")
	}
}
