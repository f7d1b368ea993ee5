package e2e

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgeseal/edgeseal/agent"
	"github.com/edgeseal/edgeseal/agent/api"
	"github.com/edgeseal/edgeseal/archive"
	"github.com/edgeseal/edgeseal/bundle/archivesig"
	"github.com/edgeseal/edgeseal/bundle/custody"
	"github.com/edgeseal/edgeseal/bundle/merkle"
	"github.com/edgeseal/edgeseal/bundle/wire"
	"github.com/edgeseal/edgeseal/internal/testenv"
	"github.com/edgeseal/edgeseal/sync/mqtttest"
)

// faultRig is a real Mosquitto, a real `edgeseal agent` delivering to a
// real `edgeseal archive`, clients exporting through the agent's socket,
// and what they were answered.
type faultRig struct {
	t       *testing.T
	brk     *mqtttest.Broker
	a       *agentDir
	acfg    string // the archive's config
	adata   string // its data_dir
	akey    ed25519.PrivateKey
	ag      *agentProc
	ar      *archiveProc
	sock    *api.Client
	led     *faultLedger
	clients int
	// agentLogs, archiveLogs: what the stopped processes logged, kept for
	// EDGESEAL_FAULT_LOGS.
	agentLogs, archiveLogs strings.Builder
	// spoolDir is the agent's spool folder; spooled are the pairs dropped
	// in it (file name -> export id) whose receipt was not seen yet.
	spoolDir string
	spooled  map[string]string
}

// faultLedger is what the clients learnt: export id -> journal seq of
// each export answered 201 or 200, and the ids sent without an answer.
type faultLedger struct {
	mu         sync.Mutex
	acked      map[string]uint64
	unanswered map[string]bool
	refused    []string // 4xx: none expected
}

func newFaultRig(t *testing.T) *faultRig {
	t.Helper()
	needAgent(t)
	needStrace(t)
	if mqtttest.Find() == "" {
		testenv.Missing(t, "mosquitto not installed")
	}
	r := &faultRig{t: t, clients: 4, led: &faultLedger{acked: map[string]uint64{}, unanswered: map[string]bool{}}, spooled: map[string]string{}}
	r.brk = mqtttest.Start(t, nil)
	adir := t.TempDir()
	r.acfg = writeArchiveConfig(t, adir, r.brk.URL, "faults-archive")
	r.adata = filepath.Join(adir, "data")
	var keyFile string
	keyFile, r.akey = archiveKeyOf(t, adir)
	r.a = newAgentDir(t, agentOpts{sealEvery: 50, sealInterval: "200ms", maxBody: "64 KiB"})
	enrollDevices(t, r.acfg, enrollFile(t, r.a))
	appendFile(t, filepath.Join(r.a.dir, "agent.yaml"), fmt.Sprintf("sync:\n  broker: %s\n  archive_key: %s\n  resend_after: 2s\n", r.brk.URL, keyFile+".pub"))
	appendFile(t, filepath.Join(r.a.dir, "agent.yaml"), "spool:\n  dir: spool\n  poll: 50ms\n  principal: n8n-prod\n")
	r.spoolDir = filepath.Join(r.a.dir, "spool")
	r.sock = unixClient(r.a.socket)
	r.ar = startArchiveProc(t, r.acfg)
	r.ag = r.a.start(t, true)
	t.Cleanup(func() {
		// With EDGESEAL_FAULT_LOGS=DIR a failed run leaves the daemons'
		// logs there.
		if d := os.Getenv("EDGESEAL_FAULT_LOGS"); d != "" && t.Failed() {
			_ = os.WriteFile(filepath.Join(d, "agent.log"), []byte(r.agentLogs.String()+r.ag.stderr.String()), 0o644)
			_ = os.WriteFile(filepath.Join(d, "archive.log"), []byte(r.archiveLogs.String()+r.ar.stderr.String()), 0o644)
		}
	})
	return r
}

// post sends one export; the body is a function of the id, so a retry is
// the same export. It returns whether it was answered 201 or 200.
func (r *faultRig) post(id string) bool {
	h := fnv.New32a()
	h.Write([]byte(id))
	body := fmt.Appendf(nil, `{"id":%q,"workflow":"invoices-daily","app":"n8n","classification":"internal","destination":"archive","data":`+e2eInvoice+`}`, id, h.Sum32()%999999)
	rep, err := do(r.t, r.sock, "POST", "http://agent/v1/exports", tokN8N, "application/json", body)
	l := r.led
	l.mu.Lock()
	defer l.mu.Unlock()
	var rc agent.ExportReceipt
	switch {
	case err != nil || rep.status >= 500:
		if _, ok := l.acked[id]; !ok {
			l.unanswered[id] = true
		}
		return false
	case (rep.status == http.StatusCreated || rep.status == http.StatusOK) && json.Unmarshal(rep.body, &rc) == nil && rc.ExportID == id:
		if old, ok := l.acked[id]; ok && old != rc.Seq {
			l.refused = append(l.refused, fmt.Sprintf("%s: answered seq %d, then %d", id, old, rc.Seq))
		}
		l.acked[id] = rc.Seq
		delete(l.unanswered, id)
		return true
	default:
		l.refused = append(l.refused, fmt.Sprintf("%s: %d %s", id, rep.status, rep.body))
		return false
	}
}

// load starts the clients: ids round-client-n, a short pause after each
// answer, a longer one after a failure. stop waits for them.
func (r *faultRig) load(round int) (stop func()) {
	return startClients(r.clients, func(c, n int) bool {
		if !r.post(fmt.Sprintf("f%03d-c%d-%05d", round, c, n)) {
			time.Sleep(50 * time.Millisecond)
		} else {
			time.Sleep(5 * time.Millisecond)
		}
		return true
	})
}

// spool drops n export pairs (a CSV and its sidecar) into the agent's
// spool folder, named after round.
func (r *faultRig) spool(round, n int) {
	r.t.Helper()
	if err := os.MkdirAll(r.spoolDir, 0o755); err != nil {
		r.t.Fatal(err)
	}
	for i := range n {
		name := fmt.Sprintf("s%03d-%02d.csv", round+1, i)
		id := "spool-" + strings.TrimSuffix(name, ".csv")
		meta := fmt.Sprintf(`{"id":%q,"workflow":"monthly-report","app":"desktop","classification":"internal","destination":"archive","principal":"n8n-prod"}`, id)
		if err := os.WriteFile(filepath.Join(r.spoolDir, "."+name), fmt.Appendf(nil, "month,total\n2024-05,%d\n", round*100+i), 0o640); err != nil {
			r.t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(r.spoolDir, name+".meta.json"), []byte(meta), 0o640); err != nil {
			r.t.Fatal(err)
		}
		if err := os.Rename(filepath.Join(r.spoolDir, "."+name), filepath.Join(r.spoolDir, name)); err != nil {
			r.t.Fatal(err)
		}
		r.spooled[name] = id
	}
}

// spoolReceipts takes the receipts the spool wrote (done/NAME.receipt.json)
// as acknowledgements, and returns how many pairs still wait for one. A
// receipt naming another export or seq than an earlier answer fails.
func (r *faultRig) spoolReceipts() int {
	r.t.Helper()
	for name, id := range r.spooled {
		b, err := os.ReadFile(filepath.Join(r.spoolDir, "done", name+".receipt.json"))
		if err != nil {
			continue
		}
		var rc agent.ExportReceipt
		if err := json.Unmarshal(b, &rc); err != nil || rc.ExportID != id {
			r.t.Fatalf("spool receipt of %s: %v %s", name, err, b)
		}
		r.led.mu.Lock()
		if old, ok := r.led.acked[id]; ok && old != rc.Seq {
			r.led.refused = append(r.led.refused, fmt.Sprintf("%s: answered seq %d, the spool's receipt says %d", id, old, rc.Seq))
		}
		r.led.acked[id] = rc.Seq
		r.led.mu.Unlock()
		delete(r.spooled, name)
	}
	return len(r.spooled)
}

// retryUnanswered sends again what went unanswered: each must now be
// answered (201 the first time it is journaled, 200 when it already is).
func (r *faultRig) retryUnanswered() {
	r.t.Helper()
	r.led.mu.Lock()
	ids := make([]string, 0, len(r.led.unanswered))
	for id := range r.led.unanswered {
		ids = append(ids, id)
	}
	r.led.mu.Unlock()
	for _, id := range ids {
		if !r.post(id) {
			r.t.Fatalf("retry of %s after the restart not answered\n%s", id, tail(r.ag.stderr.String()))
		}
	}
}

// stopBoth stops whichever daemon still runs: SIGTERM, exit status 0.
func (r *faultRig) stopBoth() {
	r.t.Helper()
	for _, p := range []*proc{r.ag.proc, r.ar.proc} {
		select {
		case <-p.exited:
		default:
			p.terminate()
		}
	}
	r.sock.CloseIdleConnections()
	r.agentLogs.WriteString(r.ag.stderr.String())
	r.archiveLogs.WriteString(r.ar.stderr.String())
}

// restart starts both daemons again, without faults, and retries what
// went unanswered.
func (r *faultRig) restart() {
	r.t.Helper()
	r.ar = startArchiveProc(r.t, r.acfg)
	r.ag = r.a.start(r.t, true)
	r.retryUnanswered()
}

// check is the full check after a fault, both daemons stopped: the
// agent's journal scrubs clean and its records chain; every export
// answered 201/200 is journaled exactly once at the seq it was answered
// with; every receipt journaled on the agent verifies with the archive's
// key and names a bundle the archive logged at that index and stores; the
// archive's log, index and object store agree (`edgeseal archive check`,
// which runs archive.Check).
func (r *faultRig) check(ctx context.Context, label string) {
	t := r.t
	t.Helper()
	r.spoolReceipts() // a receipt file is an acknowledgement
	r.led.mu.Lock()
	if len(r.led.refused) > 0 {
		t.Fatalf("%s: %d answers neither 2xx nor 5xx, first: %s", label, len(r.led.refused), r.led.refused[0])
	}
	acked := make(map[string]uint64, len(r.led.acked))
	for k, v := range r.led.acked {
		acked[k] = v
	}
	r.led.mu.Unlock()

	j := r.a.openJournal(t)
	exports := map[string][]uint64{}
	var prevLeaf [32]byte
	err := j.Scrub(ctx, func(seq uint64, raw []byte, prev [32]byte) error {
		rec, err := custody.ParseRecord(raw)
		if err != nil {
			return fmt.Errorf("record %d: %w", seq, err)
		}
		if rec.Seq != seq || rec.Prev != prev || prev != prevLeaf {
			return fmt.Errorf("record %d: seq %d, prev %x, chain %x", seq, rec.Seq, rec.Prev, prevLeaf)
		}
		prevLeaf = merkle.LeafHash(raw)
		if rec.Type == custody.TypeExport {
			b, err := rec.ExportBody()
			if err != nil {
				return err
			}
			exports[b.ExportID] = append(exports[b.ExportID], seq)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("%s: the agent's journal does not scrub: %v", label, err)
	}
	lost := 0
	for id, seq := range acked {
		if s := exports[id]; len(s) != 1 || s[0] != seq {
			if lost++; lost <= 5 {
				t.Errorf("%s: export %s answered with seq %d is journaled at %v", label, id, seq, s)
			}
		}
	}
	for id, s := range exports {
		if len(s) != 1 {
			t.Errorf("%s: export %s journaled %d times", label, id, len(s))
		}
	}
	receipts, err := agent.ReadReceipts(ctx, j)
	if err != nil {
		t.Fatalf("%s: receipts: %v", label, err)
	}
	closeErr := j.Close()

	if out, code := bundlesCLI(t, "archive", "check", "--config", r.acfg); code != 0 || !strings.Contains(out, " 0 missing, 0 corrupt, 0 disagreements") {
		t.Fatalf("%s: edgeseal archive check: exit %d\n%s", label, code, out)
	}
	pub := r.akey.Public().(ed25519.PublicKey)
	ar, err := archive.Open(ctx, archive.Options{Dir: r.adata, Key: r.akey})
	if err != nil {
		t.Fatalf("%s: reopening the archive: %v", label, err)
	}
	defer ar.Close()
	for id, raw := range receipts {
		rc, err := archivesig.VerifyReceipt(raw, archive.KeyID(pub), pub)
		if err != nil {
			t.Fatalf("%s: receipt of %s: %v", label, id, err)
		}
		rec, err := ar.LogRecord(rc.LogIndex)
		var e archivesig.ReceiptEntry
		if err != nil || json.Unmarshal(rec, &e) != nil || e.BundleDigest != rc.BundleDigest {
			t.Fatalf("%s: a receipt on the agent for %s at log index %d, not in the archive's log (%v)", label, rc.BundleDigest, rc.LogIndex, err)
		}
		d, _ := wire.ParseHash(rc.BundleDigest)
		if ok, err := ar.Objects().Has(ctx, d); err != nil || !ok {
			t.Fatalf("%s: a receipt on the agent for %s, not in the archive's object store (%v)", label, rc.BundleDigest, err)
		}
	}
	if closeErr != nil {
		t.Fatalf("%s: closing the agent's journal: %v", label, closeErr)
	}
	t.Logf("%s: check: %d exports acknowledged, %d journaled, %d receipts, archive log %d", label, len(acked), len(exports), len(receipts), ar.LogSize())
}

// drain waits until every export is sealed and delivered (the outbox
// empty), then stops both and checks the end state as the outage test
// does: each acknowledged export in exactly one archived bundle, the
// bundles in sequence, each receipted on the agent once.
func (r *faultRig) drain(ctx context.Context) {
	t := r.t
	t.Helper()
	var st agent.Status
	var maxSeq uint64
	for deadline := time.Now().Add(60 * time.Second); r.spoolReceipts() > 0; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d spool pairs without a receipt 60s after the last fault: %v\nagent:\n%s", len(r.spooled), r.spoolWhere(), tail(r.ag.stderr.String()))
		}
	}
	r.led.mu.Lock()
	for _, s := range r.led.acked {
		maxSeq = max(maxSeq, s)
	}
	acked := make(map[string]uint64, len(r.led.acked))
	for k, v := range r.led.acked {
		acked[k] = v
	}
	r.led.mu.Unlock()
	deadline := time.Now().Add(outageDrainDeadline)
	for {
		rep, err := do(t, r.sock, "GET", "http://agent/v1/status", tokAuditor, "", nil)
		if err == nil && rep.status == http.StatusOK && json.Unmarshal(rep.body, &st) == nil && st.Outbox == 0 && st.LastSeal != nil && st.LastSeal.Size > maxSeq {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("delivery did not resume: outbox not drained %v after the last fault: %d %s %v\nagent:\n%s\narchive:\n%s", outageDrainDeadline, rep.status, rep.body, err,
				tail(r.ag.stderr.String()), tail(r.ar.stderr.String()))
		}
		time.Sleep(100 * time.Millisecond)
	}
	r.ag.kill() // a clean stop would seal the delivery records journaled since
	r.ar.stop(t)
	checkOutageEnd(ctx, t, r.a, r.adata, r.akey, acked)
}

// outcome is what a daemon did after its fault.
type outcome struct {
	injected int
	exited   bool
	status   string // the exit error, "" for status 0
	logs     string // what the target logged while the fault was on
}

// faultOpts shape a round: provoke runs once the injector is attached
// (nil: the clients' load provokes the failures); noLoad keeps the
// clients off during the round.
type faultOpts struct {
	provoke func()
	noLoad  bool
}

// runFault runs one fault against the running rig: clients export, strace
// attaches to the target, two pairs are dropped into the spool folder,
// failures are provoked (fo.provoke, run once the injector is attached:
// nil lets the load do it) for up to window, strace
// detaches. A fault that must be fatal must stop the daemon with a
// non-zero status and the alarm in its log; one that must not must leave
// it running. Then both daemons stop, the state is checked, and both
// start again.
func (r *faultRig) runFault(ctx context.Context, round int, f fault, window time.Duration, fo faultOpts) outcome {
	t := r.t
	t.Helper()
	stop := func() {}
	if !fo.noLoad {
		stop = r.load(round)
		time.Sleep(300 * time.Millisecond) // traffic flows
	}
	target := r.ag.proc
	alarm := "ALARM journal write failed"
	if f.Target == "archive" {
		target, alarm = r.ar.proc, "ALARM archive storage failed"
	}
	logStart := len(target.stderr.String())
	in := inject(t, target.cmd.Process.Pid, f)
	r.spool(round, 2) // under the fault: the spool's writes are durable writes too
	if fo.provoke != nil {
		fo.provoke()
	}
	var o outcome
	o.injected = in.waitInjected(window, target.exited)
	if o.injected > 0 && f.Fatal {
		select { // the alarm, then the exit
		case <-target.exited:
		case <-time.After(60 * time.Second):
		}
	} else if o.injected > 0 {
		time.Sleep(200 * time.Millisecond) // let the failure play out under the fault
	}
	in.detach()
	stop()
	select {
	case <-target.exited:
		o.exited = true
		if target.waitErr != nil {
			o.status = target.waitErr.Error()
		}
	default:
	}
	label := fmt.Sprintf("round %d (%s)", round, f)
	logs := target.stderr.String()
	o.logs = logs[logStart:]
	switch {
	case o.exited && o.status == "":
		t.Fatalf("%s: %s exited with status 0 after an injected failure\n%s", label, f.Target, tail(logs))
	case o.exited && !strings.Contains(logs, alarm):
		t.Fatalf("%s: %s exited (%s) without the alarm %q\n%s", label, f.Target, o.status, alarm, tail(logs))
	case f.Fatal && o.injected > 0 && !o.exited:
		t.Fatalf("%s: %d calls failed and %s still runs; it must stop\n%s", label, o.injected, f.Target, tail(logs))
	}
	r.stopBoth()
	r.check(ctx, label)
	r.restart()
	t.Logf("%s: %d calls failed; exited %v %s", label, o.injected, o.exited, o.status)
	return o
}
