package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/edgeseal/edgeseal/agent"
	"github.com/edgeseal/edgeseal/archive"
	"github.com/edgeseal/edgeseal/archive/s3store"
	"github.com/edgeseal/edgeseal/bundle"
	"github.com/edgeseal/edgeseal/bundle/archivesig"
	"github.com/edgeseal/edgeseal/bundle/custody"
	"github.com/edgeseal/edgeseal/bundle/wire"
	"github.com/edgeseal/edgeseal/internal/soaktest"
)

// The replicas test's size (acceptance: 3 replicas, 8 agents, 20 kills;
// EDGESEAL_SOAK=N makes N times the kills).
const (
	replicaCount  = 3
	replicaAgents = 8
	replicaKills  = 20
	replicaDrain  = 120 * time.Second
	// replicaMaxMessage is the agents' sync.max_message: a bundle
	// larger goes as several frames, which the broker deals to different
	// replicas.
	replicaMaxMessage = 4 << 10
	// replicaSeal is each agent's seal interval: the bundles offered are
	// replicaAgents per replicaSeal.
	replicaSeal = "1s"
)

// TestArchiveReplicas: three `edgeseal archive` processes share one
// MariaDB (archive_log, archive_state and archive_index engine mysql:
// the devices, enrolled once at one replica, are in it), one versitygw
// bucket with Object Lock and the Mosquitto subscription group "archive"
// ($share/archive/...); eight `edgeseal agent` processes, each its own
// device, export continuously and deliver their bundles to the group.
// Meanwhile a random replica is SIGKILLed and started again, 20 times.
// Afterwards every agent's outbox drains, and: every export answered 201
// is journaled once at its seq and is in exactly one bundle of the
// archive log; `edgeseal archive check` of every replica exits 0: each
// bundle of the log is accepted at its log index with its receipt (in
// that replica's index or, accepted by another, in the shared database),
// nothing disagrees, no object missing or corrupt; per device the log's bundles follow each other with no
// gap and no repeat, each stored in the bucket under its digest (some
// larger than the agents' max_message: sent as several frames, which the
// broker dealt to different replicas); no
// bundle is logged twice; every receipt the agents journaled verifies
// (signature, inclusion in its checkpoint, `edgeseal verify receipt`)
// and names its bundle's log index; no replica and no agent logged a
// gap refusal (archive.gap), a fork (archive.fork), an inconsistent
// archive log (archive.inconsistent) or any ALARM. With
// EDGESEAL_REPLICA_LOGS=DIR a failed run leaves every daemon's log there.
func TestArchiveReplicas(t *testing.T) {
	scale := soaktest.Scale(t)
	start := time.Now()
	r := newReplicaRig(t, replicaCount, replicaAgents)
	t.Cleanup(func() {
		if t.Failed() {
			r.saveLogs()
		}
	})
	for i := range replicaCount {
		r.startReplica(i)
	}
	r.startAgents()
	up := time.Now()
	t.Logf("rig up after %v", up.Sub(start).Round(time.Millisecond))

	// Each agent exports every 0.3-0.7 s and seals every replicaSeal
	// (1 s): about 8 bundles/s offered to the three replicas, a load they
	// drain within replicaDrain after 20 kills. The group deals a
	// device's bundles round robin, so its consecutive bundles land on
	// different replicas, each waiting for the device's lease from
	// another (up to the archive's hold wait; a bundle answered held is
	// sent again within a second): a device gets about one bundle
	// through per commit and lease handoff, so a backlog builds under
	// the load and drains after it.
	leds := make([]*exporter, len(r.agents))
	for k, a := range r.agents {
		leds[k] = startExporter(t, a, 1, nil, func(c, n int) string { return fmt.Sprintf("d%d-%06d", k+1, n) },
			func() time.Duration { return time.Duration(300+rand.IntN(400)) * time.Millisecond })
	}
	kills := replicaKills * scale
	for i := range kills {
		time.Sleep(time.Duration(300+rand.IntN(900)) * time.Millisecond) // traffic flows
		k := rand.IntN(replicaCount)
		r.killReplica(k)
		time.Sleep(time.Duration(rand.IntN(300)) * time.Millisecond)
		r.startReplica(k)
		n := 0
		for _, l := range leds {
			if c := l.count(); c >= 0 && n >= 0 {
				n += c
			} else {
				n = -1
			}
		}
		if n < 0 {
			break
		}
		t.Logf("kill %d (replica %d): %d exports acknowledged so far", i+1, k+1, n)
	}
	time.Sleep(time.Second) // bundles flow with every replica up
	loaded := time.Now()
	acked := make([]map[string]uint64, len(r.agents))
	for k, l := range leds {
		var maxSeq uint64
		acked[k], maxSeq = l.end(t, r.procs[k].stderr.String())
		r.drained(k, maxSeq, time.Now().Add(replicaDrain))
	}
	drained := time.Since(start)
	accepted := make([]uint64, replicaCount)
	spread := 0
	for i, p := range r.reps {
		if accepted[i] = p.stats(t).Accepted; accepted[i] > 0 {
			spread++
		}
	}
	// Killed, not stopped: a clean stop would seal the delivery records
	// journaled since, a bundle that would wait in the outbox.
	for _, p := range r.procs {
		p.kill()
	}
	for _, p := range r.reps {
		p.stop(t)
	}
	r.checkEnd(t.Context(), acked)
	r.checkIndexes()
	if spread < 2 {
		t.Errorf("bundles accepted since the last restarts, per replica: %v; the group did not share the load", accepted)
	}
	total := 0
	for _, a := range acked {
		total += len(a)
	}
	t.Logf("%d replicas, %d agents, %d kills: %d exports acknowledged; drained after %v (%v of load, then %v); accepted per replica since its last start %v",
		replicaCount, len(r.agents), kills, total, drained.Round(time.Millisecond), loaded.Sub(up).Round(time.Millisecond),
		start.Add(drained).Sub(loaded).Round(time.Millisecond), accepted)
}

// alarmLines are the lines of logs that name a gap refusal, a fork, an
// inconsistent archive log (a device's witness alarm) or any ALARM.
func alarmLines(logs string) []string {
	var out []string
	sc := bufio.NewScanner(strings.NewReader(logs))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		l := sc.Text()
		if strings.Contains(l, archive.CheckGap) || strings.Contains(l, archive.CheckFork) ||
			strings.Contains(l, agent.AlarmArchiveInconsistent) || strings.Contains(l, "ALARM") {
			out = append(out, l)
		}
	}
	return out
}

// agentEnd is what checkEnd read from one stopped agent's journal.
type agentEnd struct {
	exportSeq map[string]uint64 // export id -> journal seq
	receipts  map[string][]byte // receipt id -> raw receipt
}

// readAgentEnd reads the stopped agent's journal: its export records
// (each id once), its delivery records (one per bundle), an empty
// outbox, its receipts.
func readAgentEnd(ctx context.Context, t *testing.T, a *agentDir) agentEnd {
	t.Helper()
	j := a.openJournal(t)
	defer j.Close()
	end := agentEnd{exportSeq: map[string]uint64{}}
	delivered := map[string]int{}
	err := j.Records(ctx, 0, j.Size(), func(seq uint64, raw []byte) error {
		rec, err := custody.ParseRecord(raw)
		if err != nil {
			return err
		}
		switch rec.Type {
		case custody.TypeExport:
			b, err := rec.ExportBody()
			if err != nil {
				return err
			}
			if _, dup := end.exportSeq[b.ExportID]; dup {
				return fmt.Errorf("export %s journaled twice", b.ExportID)
			}
			end.exportSeq[b.ExportID] = seq
		case custody.TypeDeliveryReceipt:
			var d agent.DeliveryBody
			if err := json.Unmarshal(rec.Body, &d); err != nil {
				return err
			}
			if delivered[d.Bundle]++; delivered[d.Bundle] > 1 {
				return fmt.Errorf("bundle %s: %d delivery records", d.Bundle, delivered[d.Bundle])
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("agent %s: %v", a.device, err)
	}
	var left []string
	if err := j.Outbox(ctx, func(id string, _ []byte) error { left = append(left, id); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(left) != 0 {
		t.Errorf("agent %s: outbox not empty: %v", a.device, left)
	}
	if end.receipts, err = agent.ReadReceipts(ctx, j); err != nil {
		t.Fatalf("agent %s: receipts: %v", a.device, err)
	}
	return end
}

// checkEnd checks the end state of TestArchiveReplicas, every daemon
// stopped; acked[k] are the exports agent k answered 201.
func (r *replicaRig) checkEnd(ctx context.Context, acked []map[string]uint64) {
	t := r.t
	t.Helper()
	for i := range r.reps {
		if l := alarmLines(r.replicaLogs(i)); len(l) > 0 {
			t.Errorf("replica %d logged %d gap refusals, forks or alarms, first:\n%s", i+1, len(l), strings.Join(l[:min(len(l), 3)], "\n"))
		}
	}
	for k, p := range r.procs {
		if l := alarmLines(p.stderr.String()); len(l) > 0 {
			t.Errorf("agent %s logged %d gap refusals or alarms, first:\n%s", r.agents[k].device, len(l), strings.Join(l[:min(len(l), 3)], "\n"))
		}
	}

	// The agents: receipts verify under the archive key and name their
	// device; each is written out for `edgeseal verify receipt`.
	pub := r.akey.Public().(ed25519.PublicKey)
	keyID := archive.KeyID(pub)
	ends := make([]agentEnd, len(r.agents))
	receiptOf := map[string]*archivesig.Receipt{} // bundle digest -> receipt
	rdir := t.TempDir()
	var files []string
	for k, a := range r.agents {
		ends[k] = readAgentEnd(ctx, t, a)
		for id, raw := range ends[k].receipts {
			rc, err := archivesig.VerifyReceipt(raw, keyID, pub) // signature and inclusion proof
			if err != nil {
				t.Fatalf("agent %s: receipt %s: %v", a.device, id, err)
			}
			if rc.Device != a.device {
				t.Fatalf("agent %s: receipt %s for device %s", a.device, id, rc.Device)
			}
			if receiptOf[rc.BundleDigest] != nil {
				t.Fatalf("bundle %s: two receipts journaled", rc.BundleDigest)
			}
			receiptOf[rc.BundleDigest] = rc
			f := filepath.Join(rdir, fmt.Sprintf("r%05d.receipt.json", len(files)))
			if err := os.WriteFile(f, raw, 0o644); err != nil {
				t.Fatal(err)
			}
			files = append(files, f)
		}
	}
	if len(files) == 0 {
		t.Fatal("no receipt journaled by any agent")
	}
	out, code := runCmd(t, append([]string{"verify", "receipt", "--archive-key", r.pub}, files...)...)
	if code != 0 || strings.Count(out, ": verified") != len(files) || strings.Contains(out, "NOT VERIFIED") {
		t.Fatalf("edgeseal verify receipt of %d receipts: exit %d\n%s", len(files), code, tail(out))
	}

	// The archive log (in MariaDB), read through replica 1's config:
	// per device its bundles in order, each in the bucket.
	o := r.gw.Options(r.bucket)
	o.Prefix = "bundles/"
	objs, err := s3store.New(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	next := map[string]uint64{}   // device -> the seq its next bundle starts at
	logged := map[string]uint64{} // bundle digest -> log index
	inArchive := map[string]int{} // "<device> <export id>" -> times archived
	bundles, multi := 0, 0        // multi: bundles larger than the agents' max_message, sent as several frames
	err = archiveLogRecords(t, filepath.Join(filepath.Dir(r.cfgs[0]), "data"), func(idx uint64, rec []byte) error {
		var e archivesig.ReceiptEntry
		if err := json.Unmarshal(rec, &e); err != nil {
			return fmt.Errorf("log %d: %w", idx, err)
		}
		d, err := wire.ParseHash(e.BundleDigest)
		if err != nil {
			return nil // not a bundle entry
		}
		bundles++
		if first, dup := logged[e.BundleDigest]; dup {
			return fmt.Errorf("log %d: bundle %s logged again (first at %d)", idx, e.BundleDigest, first)
		}
		logged[e.BundleDigest] = idx
		rc := receiptOf[e.BundleDigest]
		if rc == nil {
			return fmt.Errorf("log %d: bundle %s of %s has no receipt journaled on its agent", idx, e.BundleDigest, e.Device)
		}
		if rc.LogIndex != idx || rc.Device != e.Device || rc.CheckpointSize != e.CheckpointSize {
			return fmt.Errorf("log %d: the receipt says index %d, device %s, size %d; the entry %s, %d", idx, rc.LogIndex, rc.Device, rc.CheckpointSize, e.Device, e.CheckpointSize)
		}
		raw, err := objs.Get(ctx, d)
		if err != nil {
			return fmt.Errorf("log %d: bundle %s not in the bucket: %w", idx, e.BundleDigest, err)
		}
		if sha256.Sum256(raw) != d {
			return fmt.Errorf("log %d: stored bytes do not match %s", idx, e.BundleDigest)
		}
		if len(raw) > replicaMaxMessage {
			multi++
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
			cr, err := custody.ParseRecord(rr)
			if err != nil {
				return fmt.Errorf("log %d: %w", idx, err)
			}
			if cr.Seq != next[e.Device] {
				return fmt.Errorf("log %d: %s record seq %d, want %d (out of order, gap or repeat)", idx, e.Device, cr.Seq, next[e.Device])
			}
			next[e.Device]++
			if cr.Type == custody.TypeExport {
				eb, err := cr.ExportBody()
				if err != nil {
					return err
				}
				inArchive[e.Device+" "+eb.ExportID]++
			}
		}
		if e.CheckpointSize != next[e.Device] {
			return fmt.Errorf("log %d: %s checkpoint size %d, its records end at %d", idx, e.Device, e.CheckpointSize, next[e.Device])
		}
		return nil
	})
	if err != nil {
		t.Fatalf("archive log: %v", err)
	}
	if bundles != len(receiptOf) {
		t.Errorf("%d receipts journaled on the agents, %d bundles in the archive log", len(receiptOf), bundles)
	}

	// Every acknowledged export: journaled at its seq, archived once.
	for k, a := range r.agents {
		missing := 0
		for id, seq := range acked[k] {
			if s, ok := ends[k].exportSeq[id]; !ok || s != seq {
				t.Errorf("agent %s: export %s answered seq %d, journaled at %d (%v)", a.device, id, seq, s, ok)
			}
			if n := inArchive[a.device+" "+id]; n != 1 {
				if missing++; missing <= 5 {
					t.Errorf("agent %s: acknowledged export %s (seq %d) is in the archive %d times", a.device, id, seq, n)
				}
			}
		}
		if missing > 0 {
			t.Errorf("agent %s: %d of %d acknowledged exports not archived exactly once", a.device, missing, len(acked[k]))
		}
		if len(acked[k]) == 0 {
			t.Errorf("agent %s: no export acknowledged: the load did not run", a.device)
		}
	}
	t.Logf("end: %d bundles of %d devices in the log (%d of them sent as several frames), %d receipts verified", bundles, len(next), multi, len(files))
	if multi == 0 {
		t.Errorf("no bundle larger than max_message %d: the replicas joined no multi-frame bundle", replicaMaxMessage)
	}
}

// checkIndexes runs `edgeseal archive check` on every stopped replica:
// each exits 0 (every logged bundle accepted at its log index with its
// receipt, in the replica's index or in the shared database; no object
// missing or corrupt), all over the same log.
func (r *replicaRig) checkIndexes() {
	t := r.t
	t.Helper()
	entries := ""
	for i, c := range r.cfgs {
		out, code := bundlesCLI(t, "archive", "check", "--config", c)
		summary := ""
		for _, l := range strings.Split(out, "\n") {
			l = strings.TrimSpace(l)
			switch {
			case strings.Contains(l, " bundles checked in a log of "):
				summary = l
			case strings.HasPrefix(l, "INCONSISTENT") || strings.HasPrefix(l, "MISSING") || strings.HasPrefix(l, "CORRUPT"):
				t.Errorf("archive check of replica %d: %s", i+1, l)
			}
		}
		if code != 0 || !strings.Contains(summary, ": 0 missing, 0 corrupt, ") {
			t.Fatalf("archive check of replica %d: exit %d, want 0\n%s", i+1, code, tail(out))
		}
		n, _, _ := strings.Cut(summary, " bundles checked")
		if entries == "" {
			entries = n
		} else if n != entries {
			t.Errorf("archive check of replica %d: %s bundles checked, replica 1 checked %s", i+1, n, entries)
		}
	}
	if n, err := strconv.Atoi(entries); err != nil || n == 0 {
		t.Fatalf("archive check: no bundle count in %q", entries)
	}
}
