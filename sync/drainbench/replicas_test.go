package drainbench

import (
	"bytes"
	"cmp"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	gosync "sync"
	"testing"
	"time"

	"github.com/edgeseal/edgeseal/agent"
	"github.com/edgeseal/edgeseal/archive"
	"github.com/edgeseal/edgeseal/bundle/trustfile"
	"github.com/edgeseal/edgeseal/internal/mariadbtest"
	"github.com/edgeseal/edgeseal/store"
	"github.com/edgeseal/edgeseal/sync"
	"github.com/edgeseal/edgeseal/sync/mqtttest"
	"github.com/edgeseal/edgeseal/tpm"
	"github.com/edgeseal/edgeseal/tpm/swtpmtest"
)

// Shape of BenchmarkReplicas: replicaDevices devices, each with a
// backlog of replicaBundles bundles of replicaSeal exports (about 200 KB
// a bundle: one MQTT message at the default 256 KiB, as a shared
// subscription deals each message to one replica) for each of the two
// measured drains. The publishers run with the agent's defaults (window
// 8, sync.resend_after 2 min).
const (
	replicaDevices = 8
	replicaBundles = 15
	replicaSeal    = 100
	// replicaPhaseMax bounds each drain (replicaLink.phaseMax).
	replicaPhaseMax = 75 * time.Second
)

// replicaDevice is one simulated site appliance: its TPM simulator,
// journal and agent core, and its trust at the archive.
type replicaDevice struct {
	name  string
	tp    *tpm.TPM
	j     *store.Journal
	core  *agent.Core
	trust *trustfile.Trust
	next  int // the next export id
	sent  int // bundles drained so far
}

// replicaPhase is what one drain measured.
type replicaPhase struct {
	replicas       int
	bundles        int
	bytes          int64
	d              time.Duration
	cpu            time.Duration // the benchmark process (the agents' cores and publishers)
	brk, db        time.Duration // mosquitto's, mariadbd's
	reps           []replicaStats
	resent, reject uint64 // the publishers' resends and rejections received (held answers)
	// capped: the drain was stopped at replicaLink.phaseMax; delivered
	// bundles had their receipt journaled and left the outbox by then,
	// accepted were accepted by the replicas (some receipts may be on
	// their way).
	capped    bool
	delivered int
	accepted  uint64
}

// mbps is the bundle bytes delivered a second (bundles of the backlog's
// mean size).
func (p replicaPhase) mbps() float64 {
	return float64(p.bytes) * float64(p.delivered) / float64(p.bundles) / 1e6 / p.d.Seconds()
}

// rate is the bundles delivered a second.
func (p replicaPhase) rate() float64 { return float64(p.delivered) / p.d.Seconds() }

// BenchmarkReplicas measures archive replicas on the replicated engines,
// side by side in one run on this machine: a real MariaDB (archive_log
// and archive_state engine mysql: the Tessera log and the chain state),
// a real Mosquitto with the replicas in the shared subscription group
// "archive" ($share/archive/...), one objects directory shared by the
// replicas (write-once FSStore, fsync), each replica its own data
// directory (index, logkeys, devices.json), a child process each (this
// binary in mode childReplica) as the daemon runs them. replicaDevices
// devices (agent cores on the TPM simulator, each its own journal and
// sync publisher with the agent's defaults)
// journal an offline backlog, then their publishers drain it; the drain
// is timed until every outbox is empty (every receipt verified and
// journaled). First with one replica, then (a new backlog of the same
// size, the same devices going on) with two: one-bundles/s,
// two-bundles/s and two-%-of-one (bundles whose receipts were
// journaled, a second). A drain stops after replicaPhaseMax: its rate is
// then the bundles delivered by then over that time, and drained-% says
// how much of the backlog that was (a collapsed throughput would
// otherwise keep the benchmark for many minutes). Before the one-replica drain, while the
// outboxes are full, the essential floor (replicas_floor_test.go: the
// same bundles read from the outboxes, published with paho QoS 1,
// reassembled, verified against each device's trust in chain order and
// stored write-once with fsync; nothing else) runs three times, the
// median kept: floor-bundles/s and one-%-of-floor. Also reported per
// phase (one-, two-): archive-cpu-ms/bundle (the replicas' processes),
// agent-cpu-ms/bundle (this process: cores and publishers),
// db-cpu-ms/bundle (mariadbd), broker-cpu-ms/bundle, cores,
// admit-ms/bundle and receive-ms/bundle (as BenchmarkDrain's), held (the
// bundles answered held, the daemon's verifications_total{result="held"}),
// duplicates, resent (the publishers' resends); two-min-share-% is the
// smaller replica's share of the bundles accepted. It checks that every
// bundle was accepted once, none refused, no alarm, every outbox empty,
// each device's receipts journaled and the log grown by the bundles.
// EDGESEAL_RBENCH_DEVICES, _BUNDLES, _SEAL, _WINDOW, _RESEND and
// _PHASE_MAX (durations) override the shape, the publishers' window and
// sync.resend_after, and the bound of a drain
// (EDGESEAL_RBENCH_MAX_PENDING the replicas' subscriber's MaxPending, a
// diagnosis: the daemon runs the default); EDGESEAL_RBENCH_GOROUTINES=F
// writes each replica's goroutine stacks at the end of each drain to
// F.<client id>; EDGESEAL_RBENCH_CPUPROFILE=F writes
// each replica's CPU profile of each drain to F.<client id>. The replicas join
// the frames of multi-frame bundles in the chain-state database
// (archive/sqlframes), as the daemon does; EDGESEAL_RBENCH_MEM_FRAMES=1
// joins them in each replica's memory instead (the shared subscription
// then splits a bundle's frames between replicas that never join them).
func BenchmarkReplicas(b *testing.B) {
	nDev, nBundles, seal := envOr("EDGESEAL_RBENCH_DEVICES", replicaDevices), envOr("EDGESEAL_RBENCH_BUNDLES", replicaBundles), envOr("EDGESEAL_RBENCH_SEAL", replicaSeal)
	ctx := context.Background()
	dir := b.TempDir()
	db := mariadbtest.Start(b)
	brk := mqtttest.Start(b, nil)
	_, akey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	logDSN, stateDSN := db.Database(b), db.Database(b)
	reps := make([]replicaConfig, 2)
	for i := range reps {
		reps[i] = replicaConfig{dir: filepath.Join(dir, fmt.Sprintf("replica%d", i+1)), logDSN: logDSN, stateDSN: stateDSN,
			objects: filepath.Join(dir, "objects"), key: akey}
	}
	devs := openReplicaDevices(b, dir, nDev, seal)
	// Every device enrolled and approved at each replica (its own
	// devices.json), as an operator does.
	var logSize uint64
	var arPub ed25519.PublicKey
	var arKeyID string
	for _, c := range reps {
		ar, closeAr, err := openReplica(ctx, c)
		if err != nil {
			b.Fatal(err)
		}
		for _, d := range devs {
			d.trust = enrollAs(b, ar, d.tp, "site1", d.name)
		}
		logSize, arPub, arKeyID = ar.LogSize(), ar.PublicKey(), ar.KeyID()
		if err := closeAr(); err != nil {
			b.Fatal(err)
		}
	}
	link := replicaLink{url: brk.URL, pub: arPub, keyID: arKeyID, window: envInt("EDGESEAL_RBENCH_WINDOW"), phaseMax: replicaPhaseMax}
	if v := os.Getenv("EDGESEAL_RBENCH_PHASE_MAX"); v != "" {
		if link.phaseMax, err = time.ParseDuration(v); err != nil {
			b.Fatalf("EDGESEAL_RBENCH_PHASE_MAX: %v", err)
		}
	}
	if v := os.Getenv("EDGESEAL_RBENCH_RESEND"); v != "" {
		if link.resend, err = time.ParseDuration(v); err != nil {
			b.Fatalf("EDGESEAL_RBENCH_RESEND: %v", err)
		}
	}

	b.ResetTimer()
	var phases []replicaPhase
	var floor floorRun
	for _, n := range []int{1, 2} {
		for _, d := range devs {
			journalEvery(b, d.core, d.next, nBundles*seal, seal)
			d.next += nBundles * seal
		}
		if n == 1 {
			var floors []floorRun
			for run := range pahoRuns {
				settle(b)
				floors = append(floors, replicaFloor(b, brk, devs, filepath.Join(dir, fmt.Sprintf("floor%d", run))))
			}
			slices.SortFunc(floors, func(x, y floorRun) int { return cmp.Compare(x.d, y.d) })
			floor = floors[len(floors)/2]
		}
		p := drainReplicas(b, link, brk, db, reps[:n], devs)
		grown := uint64(0)
		for _, r := range p.reps {
			grown = max(grown, r.logSize)
		}
		// A stopped drain may leave bundles logged and not yet counted
		// accepted (their commit under way).
		if grown < logSize+p.accepted || (!p.capped && grown != logSize+p.accepted) || grown > logSize+uint64(p.bundles) {
			b.Fatalf("%d replicas: the log grew from %d to %d for %d bundles accepted of %d", n, logSize, grown, p.accepted, p.bundles)
		}
		logSize = grown
		phases = append(phases, p)
	}
	b.StopTimer()
	one, two := phases[0], phases[1]
	b.ReportMetric(one.rate(), "one-bundles/s")
	b.ReportMetric(two.rate(), "two-bundles/s")
	b.ReportMetric(100*two.rate()/one.rate(), "two-%-of-one")
	floorRate := float64(one.bundles) / floor.d.Seconds()
	b.ReportMetric(floorRate, "floor-bundles/s")
	b.ReportMetric(100*one.rate()/floorRate, "one-%-of-floor")
	b.ReportMetric(one.mbps(), "one-MB/s")
	b.ReportMetric(two.mbps(), "two-MB/s")
	b.ReportMetric(float64(floor.bytes)/1e6/floor.d.Seconds(), "floor-MB/s")
	b.ReportMetric(float64(nDev), "devices")
	b.ReportMetric(float64(one.bundles), "bundles")
	b.ReportMetric(float64(one.bytes)/1e3/float64(one.bundles), "bundle-KB")
	b.ReportMetric(float64(floor.cpu.Microseconds())/1e3/float64(one.bundles), "floor-cpu-ms/bundle")
	b.ReportMetric(float64(floor.brk.Microseconds())/1e3/float64(one.bundles), "floor-broker-cpu-ms/bundle")
	for _, p := range phases {
		pre := map[int]string{1: "one-", 2: "two-"}[p.replicas]
		per := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1e3 / float64(max(p.accepted, 1)) }
		var arCPU, admit, receive time.Duration
		var held, dups uint64
		minShare := 100.0
		for _, r := range p.reps {
			arCPU, admit, receive = arCPU+r.cpu, admit+r.admit, receive+r.receive
			held, dups = held+r.held, dups+r.duplicates
			minShare = min(minShare, 100*float64(r.accepted)/float64(max(p.accepted, 1)))
		}
		b.ReportMetric(p.d.Seconds(), pre+"drain-s")
		b.ReportMetric(100*float64(p.delivered)/float64(p.bundles), pre+"drained-%")
		b.ReportMetric(per(arCPU), pre+"archive-cpu-ms/bundle")
		b.ReportMetric(per(p.cpu), pre+"agent-cpu-ms/bundle")
		b.ReportMetric(per(p.db), pre+"db-cpu-ms/bundle")
		b.ReportMetric(per(p.brk), pre+"broker-cpu-ms/bundle")
		b.ReportMetric((arCPU+p.cpu+p.db+p.brk).Seconds()/p.d.Seconds(), pre+"cores")
		b.ReportMetric(per(admit), pre+"admit-ms/bundle")
		b.ReportMetric(per(receive), pre+"receive-ms/bundle")
		b.ReportMetric(float64(held), pre+"held")
		b.ReportMetric(float64(dups), pre+"duplicates")
		b.ReportMetric(float64(p.resent), pre+"resent")
		if p.replicas > 1 {
			b.ReportMetric(minShare, pre+"min-share-%")
		}
	}
	b.ReportMetric(0, "ns/op")
	b.Logf("%d devices, %d bundles of %.0f KB a drain: one replica %.1f bundles/s (%d delivered in %v), two %.1f bundles/s (%d delivered in %v, %.0f%% of one; held %v, accepted %v), essential floor %.1f bundles/s (%v; one replica %.0f%% of it)",
		nDev, one.bundles, float64(one.bytes)/1e3/float64(one.bundles), one.rate(), one.delivered, one.d.Round(time.Millisecond), two.rate(), two.delivered, two.d.Round(time.Millisecond),
		100*two.rate()/one.rate(), heldOf(two), acceptedOf(two), floorRate, floor.d.Round(time.Millisecond), 100*one.rate()/floorRate)
}

// replicaLink is how the devices' publishers reach the replicas.
type replicaLink struct {
	url    string
	pub    ed25519.PublicKey
	keyID  string
	window int
	resend time.Duration
	// phaseMax bounds a drain: past it the drain's rate is the bundles
	// delivered so far over it (a collapsed throughput would otherwise
	// take the benchmark far past its budget).
	phaseMax time.Duration
}

// drainReplicas starts a replica child for each of reps, then every
// device's publisher, and times the drain of every outbox; it checks
// what the drain left (see BenchmarkReplicas) and stops the replicas.
func drainReplicas(b *testing.B, link replicaLink, brk *mqtttest.Broker, db *mariadbtest.Server, reps []replicaConfig, devs []*replicaDevice) replicaPhase {
	ctx := context.Background()
	p := replicaPhase{replicas: len(reps)}
	drained := make([]*drainedOutbox, len(devs))
	pubs := make([]*sync.Publisher, len(devs))
	for k, d := range devs {
		n := 0
		err := d.j.Outbox(ctx, func(_ string, data []byte) error { p.bytes += int64(len(data)); n++; return nil })
		if err != nil {
			b.Fatal(err)
		}
		p.bundles += n
		drained[k] = &drainedOutbox{Core: d.core, want: n, done: make(chan struct{})}
		pubs[k], err = sync.NewPublisher(sync.PublisherOptions{
			Broker: link.url, Site: "site1", Device: d.name, Outbox: drained[k], Window: link.window, ResendAfter: link.resend,
			ArchiveKey: link.pub, ArchiveKeyID: link.keyID, OnReceipts: d.core.JournalReceipts,
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	children := make([]*child, len(reps))
	for i, c := range reps {
		children[i] = startReplicaChild(b, link.url, fmt.Sprintf("bench-replica-%d", i+1), c)
	}
	pctx, stopPubs := context.WithCancel(ctx)
	pubDone := make(chan error, len(pubs))
	settle(b)
	for _, c := range children {
		c.send(b, "start")
	}
	cpu0, brk0, db0 := cpuTime(b), brokerCPU(b, brk), dbCPU(b, db)
	start := time.Now()
	for _, pub := range pubs {
		go func() { pubDone <- pub.Start(pctx) }()
	}
	limit := time.NewTimer(link.phaseMax)
wait:
	for _, o := range drained {
		select {
		case <-o.done:
		case <-limit.C:
			p.capped = true
			break wait
		}
	}
	p.d = time.Since(start)
	limit.Stop()
	p.cpu, p.brk, p.db = cpuTime(b)-cpu0, brokerCPU(b, brk)-brk0, dbCPU(b, db)-db0
	for _, c := range children {
		p.reps = append(p.reps, c.replicaStats(b))
	}
	for _, c := range children {
		if err := c.stop(); err != nil {
			b.Fatalf("replica child: %v", err)
		}
	}
	// The publishers count the deliveries just after the deletions.
	for k, pub := range pubs {
		for t := time.Now(); !p.capped && pub.Stats().Delivered < uint64(drained[k].want) && time.Since(t) < 10*time.Second; {
			time.Sleep(time.Millisecond)
		}
		st := pub.Stats()
		p.resent += st.Resent
		p.reject += st.Rejected
	}
	stopPubs()
	for range pubs {
		<-pubDone
	}
	for k, o := range drained {
		n := o.count()
		p.delivered += n
		devs[k].sent += n
	}
	var accepted uint64
	for i, r := range p.reps {
		if r.refused != 0 || r.alarms != 0 {
			b.Fatalf("%d replicas: replica %d refused %d bundles, raised %d alarms", len(reps), i+1, r.refused, r.alarms)
		}
		accepted += r.accepted
	}
	p.accepted = accepted
	if (!p.capped && accepted != uint64(p.bundles)) || accepted < uint64(p.delivered) || accepted > uint64(p.bundles) {
		b.Fatalf("%d replicas: %d bundles accepted, %d of %d delivered", len(reps), accepted, p.delivered, p.bundles)
	}
	for _, d := range devs {
		left := 0
		if err := d.j.OutboxIDs(ctx, func(string) error { left++; return nil }); err != nil || (!p.capped && left != 0) {
			b.Fatalf("%s: outbox not empty after the drain: %d left, %v", d.name, left, err)
		}
		receipts, err := agent.ReadReceipts(ctx, d.j)
		if err != nil || len(receipts) != d.sent {
			b.Fatalf("%s: %d receipts journaled for %d bundles: %v", d.name, len(receipts), d.sent, err)
		}
	}
	return p
}

// openReplicaDevices opens n devices under dir, each as the agent opens
// its own: a swtpm of its own (the in-process simulator is one a
// process), its keys created, its journal encrypted with the TPM's data
// key, an agent core sealing every seal exports. Their TPMs are made at
// once (key creation dominates).
func openReplicaDevices(b *testing.B, dir string, n, seal int) []*replicaDevice {
	ctx := context.Background()
	devs := make([]*replicaDevice, n)
	tpms := make([]*swtpmtest.Instance, n)
	for k := range devs {
		devs[k] = &replicaDevice{name: fmt.Sprintf("dev%d", k+1)}
		sdir := filepath.Join(dir, devs[k].name, "swtpm")
		if err := os.MkdirAll(sdir, 0o700); err != nil {
			b.Fatal(err)
		}
		tpms[k] = swtpmtest.StartIn(b, sdir)
	}
	errs := make([]error, n)
	var wg gosync.WaitGroup
	for k, d := range devs {
		wg.Go(func() {
			d.tp, errs[k] = tpm.Open(ctx, tpms[k].Spec, tpm.Options{StateDir: filepath.Join(dir, d.name, "tpm"), Create: true})
		})
	}
	wg.Wait()
	for k, d := range devs {
		if errs[k] != nil {
			b.Fatalf("%s: %v", d.name, errs[k])
		}
		b.Cleanup(func() { d.tp.Close() })
		key, err := d.tp.DataKey(ctx)
		if err != nil {
			b.Fatal(err)
		}
		if d.j, err = store.Open(ctx, store.Options{Dir: filepath.Join(dir, d.name, "journal"), EncryptionKey: key, MemTableSize: 8 << 20}); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { d.j.Close() })
		if d.core, err = agent.Open(ctx, agent.Options{Site: "site1", Device: d.name, SealEvery: seal, SealInterval: time.Hour}, d.j, d.tp); err != nil {
			b.Fatal(err)
		}
	}
	return devs
}

// enrollAs enrolls and approves device site/dev (the TPM's keys) at ar.
func enrollAs(b *testing.B, ar *archive.Archive, tp *tpm.TPM, site, dev string) *trustfile.Trust {
	ctx := context.Background()
	tr, err := trustfile.NewTrust(site, dev, agent.BundleIdentity(tp.Identity()))
	if err != nil {
		b.Fatal(err)
	}
	raw, err := tr.Marshal()
	if err != nil {
		b.Fatal(err)
	}
	req, err := archive.ParseEnrollRequest(raw)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := ar.Devices().Enroll(ctx, req); err != nil {
		b.Fatal(err)
	}
	if _, err := ar.Devices().Approve(ctx, site+"/"+dev, tr.KeyID, "bench"); err != nil {
		b.Fatal(err)
	}
	return tr
}

// dbCPU is the CPU time mariadbd used so far (its pid file's process).
func dbCPU(b *testing.B, db *mariadbtest.Server) time.Duration {
	raw, err := os.ReadFile(filepath.Join(db.Dir, "mariadbd.pid"))
	if err != nil {
		b.Fatal(err)
	}
	pid := strings.TrimSpace(string(raw))
	stat, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		b.Fatal(err)
	}
	// The command name (field 2) is in parentheses and may hold spaces.
	f := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
	if len(f) < 13 {
		b.Fatalf("short /proc/%s/stat", pid)
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64) // fields 14 and 15
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		b.Fatalf("bad /proc/%s/stat", pid)
	}
	const ticks = 100 // USER_HZ
	return time.Duration(utime+stime) * time.Second / ticks
}

// heldOf and acceptedOf list a phase's counters per replica.
func heldOf(p replicaPhase) []uint64 {
	var v []uint64
	for _, r := range p.reps {
		v = append(v, r.held)
	}
	return v
}

func acceptedOf(p replicaPhase) []uint64 {
	var v []uint64
	for _, r := range p.reps {
		v = append(v, r.accepted)
	}
	return v
}

// envOr reads a positive number from the environment, def when unset.
func envOr(k string, def int) int {
	if n := envInt(k); n > 0 {
		return n
	}
	return def
}
