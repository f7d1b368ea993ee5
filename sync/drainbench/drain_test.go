package drainbench

import (
	"cmp"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"runtime/trace"
	"slices"
	"strconv"
	"strings"
	gosync "sync"
	"sync/atomic"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/edgeseal/edgeseal/agent"
	"github.com/edgeseal/edgeseal/archive"
	"github.com/edgeseal/edgeseal/bundle/archivesig"
	"github.com/edgeseal/edgeseal/bundle/custody"
	"github.com/edgeseal/edgeseal/bundle/trustfile"
	"github.com/edgeseal/edgeseal/bundle/wire"
	"github.com/edgeseal/edgeseal/internal/e2etest"
	"github.com/edgeseal/edgeseal/store"
	"github.com/edgeseal/edgeseal/sync"
	"github.com/edgeseal/edgeseal/sync/mqtttest"
	"github.com/edgeseal/edgeseal/tpm"
	"github.com/edgeseal/edgeseal/tpm/simulator"
)

// pahoRuns is how many times the paho baseline runs (its median is kept).
const pahoRuns = 3

// Shape of the backlog: drainExports exports of exportData bytes each,
// sealed every sealEvery exports (the agent's default seal.every).
const (
	drainExports = 200_000
	sealEvery    = 1000
	exportData   = 512 // with its record, about 1 KiB an export
)

// BenchmarkDrain journals the backlog while the site is offline (no
// publisher), then starts the site's publisher against the broker the
// archive is subscribed on and times the drain until the outbox is empty; then it times a
// plain paho QoS 1 publish of the same frames to the same broker, with a
// QoS 1 subscriber taking them (as the archive takes the drain's), three
// times, and keeps the median. It
// reports both in MB/s (bundle bytes; frame bytes for paho) and the
// drain's share of the baseline, with where the time and CPU went:
// admit-ms/bundle (reading and verifying, in arrival order),
// receive-ms/bundle (admission to answer; bundles overlap). The archive
// and the baseline's subscriber run in child processes (child_test.go),
// so this process's CPU over the drain is the agent's alone:
// agent-cpu-ms/bundle (core, outbox, publisher and its MQTT client),
// archive-cpu-ms/bundle (the archive's process), archive-index-after-cpu-ms/bundle
// (the archive's CPU after the drain until its export index covered the
// log: the indexing that yielded to admission), archive-rss-MiB (the
// archive process's own peak RSS, VmHWM, read once its index covered
// the log), cpu-ms/bundle (both),
// broker-cpu-ms/bundle (mosquitto's) and cores (all over the drain's wall
// time); for the median paho run paho-pub-cpu-ms/bundle (the publishing
// client alone, the agent's counterpart), paho-cpu-ms/bundle (both
// clients), paho-broker-cpu-ms/bundle and paho-cores; agent-sys-% is the
// system part of the agent's CPU, agent-read-cpu-ms/bundle the CPU of
// reading each bundle from the outbox alone (outboxReadCPU: work the
// agent cannot skip and the baseline does not do), agent-idle-cpu-ms/bundle
// what the agent's process burns with nothing to send (idleCPU) over a
// span as long as the drain: the part of its CPU that grows with the
// drain's wall time (set by the archive), not with the bundles. Before the drain, while the outbox
// is full, it times the essential floor three times (floor_test.go: paho
// plus only the steps delivery cannot skip; floor-MB/s, floor-%-of-paho,
// floor-cpu-ms/bundle, floor-broker-cpu-ms/bundle, floor-cores), an upper
// bound for the drain here. EDGESEAL_DRAIN_EXPORTS overrides the number
// of exports (for a quick run), EDGESEAL_DRAIN_WINDOW the publisher's
// window, EDGESEAL_DRAIN_CPUPROFILE writes a CPU profile of the drain
// of the agent's process and EDGESEAL_DRAIN_ARCHIVE_CPUPROFILE one of the
// archive's, EDGESEAL_DRAIN_INDEX_CPUPROFILE one of the archive's export
// index catching up after the drain (EDGESEAL_DRAIN_PROFILE_HZ samples
// per second, default 100),
// EDGESEAL_DRAIN_TRACE=F writes an execution trace of the drain,
// EDGESEAL_DRAIN_MEMPROFILE=F writes allocation profiles F.before and F
// around it (go tool pprof -sample_index=alloc_space -base F.before F).
// The publisher takes the outbox from the agent's Core, as the daemon
// does (bundles read one by one, with the digests taken at seal time).
func BenchmarkDrain(b *testing.B) {
	n := drainN(b)
	ctx := context.Background()
	dir := b.TempDir()
	brk := mqtttest.Start(b, nil)

	// The site: TPM simulator, journal, core.
	tp, j := e2etest.OpenDevice(ctx, b, simulator.Open, dir, store.Options{MemTableSize: 8 << 20})
	core, err := agent.Open(ctx, agent.Options{Site: "site1", Device: "dev1", SealEvery: sealEvery, SealInterval: time.Hour}, j, tp)
	if err != nil {
		b.Fatal(err)
	}

	// The archive, the device enrolled and approved.
	_, akey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	arDir := filepath.Join(dir, "archive")
	ar, err := archive.Open(ctx, archive.Options{Dir: arDir, Key: akey})
	if err != nil {
		b.Fatal(err)
	}
	trust := enroll(b, ar, tp)
	arPub, arKeyID := ar.PublicKey(), ar.KeyID()
	if err := ar.Close(); err != nil { // the archive runs in a child process
		b.Fatal(err)
	}

	t0 := time.Now()
	journal(b, core, n)
	journaled := time.Since(t0)
	var backlog, bundles int64
	var frames []int // message sizes of the drain, for the baseline
	digests := map[string][32]byte{}
	err = j.Outbox(ctx, func(id string, data []byte) error {
		backlog += int64(len(data))
		bundles++
		digests[id] = sha256.Sum256(data)
		for _, f := range sync.EncodeChunks(id, digests[id], data, sync.DefaultMaxMessage) {
			frames = append(frames, len(f))
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}

	// The essential floor (floor_test.go), while the outbox is full:
	// three runs, the median kept; each timed run starts once Badger's
	// compactions after the journaling are over.
	var floors []floorRun
	for run := range pahoRuns {
		settle(b)
		floors = append(floors, essentialFloor(b, brk.URL, core, j, trust, filepath.Join(dir, fmt.Sprintf("floor%d", run)), func() time.Duration { return brokerCPU(b, brk) }))
	}
	slices.SortFunc(floors, func(x, y floorRun) int { return cmp.Compare(x.d, y.d) })
	floor := floors[len(floors)/2]
	readCPU := outboxReadCPU(b, core, j)

	// The link returns: the site's publisher connects to the broker the
	// archive is subscribed on, and drains.
	arc := startArchiveChild(b, brk.URL, arDir, akey)
	drained := &drainedOutbox{Core: core, want: int(bundles), done: make(chan struct{})}
	pub, err := sync.NewPublisher(sync.PublisherOptions{
		Broker: brk.URL, Site: "site1", Device: "dev1", Outbox: drained, Window: envInt("EDGESEAL_DRAIN_WINDOW"),
		ArchiveKey: arPub, ArchiveKeyID: arKeyID, OnParsedReceipts: drained.journal,
	})
	if err != nil {
		b.Fatal(err)
	}
	pctx, stopPub := context.WithCancel(ctx)
	pubDone := make(chan error, 1)
	if hz := envInt("EDGESEAL_DRAIN_PROFILE_HZ"); hz > 0 {
		runtime.SetCPUProfileRate(hz) // before StartCPUProfile, which then keeps it
	}
	writeHeap(b, "EDGESEAL_DRAIN_MEMPROFILE", ".before")
	if out := envFile(b, "EDGESEAL_DRAIN_CPUPROFILE"); out != nil {
		if err := pprof.StartCPUProfile(out); err != nil {
			b.Fatal(err)
		}
		defer pprof.StopCPUProfile()
	}
	if out := envFile(b, "EDGESEAL_DRAIN_TRACE"); out != nil {
		if err := trace.Start(out); err != nil {
			b.Fatal(err)
		}
		defer trace.Stop()
	}
	settle(b)
	b.ResetTimer()
	arc.send(b, "start")
	cpu0, flt0, alloc0, sys0 := cpuTime(b), minorFaults(b), allocated(), sysTime(b)
	brk0 := brokerCPU(b, brk)
	start := time.Now()
	go func() { pubDone <- pub.Start(pctx) }()
	// The drain is over when the last outbox entry is deleted (after its
	// receipt was journaled): drainedOutbox says so, without a poll whose
	// wakeups (a 2 ms one costs about 3% of a core) would count as the
	// agent's CPU. The outbox itself is listed once afterwards, so the
	// benchmark's own reads do not count either.
	var connectedAt time.Duration
	connected := time.NewTicker(time.Millisecond)
	timeout := time.NewTimer(20 * time.Minute)
wait:
	for {
		select {
		case <-drained.done:
			break wait
		case <-connected.C:
			if pub.Stats().Connected {
				connectedAt = time.Since(start)
				connected.Stop()
			}
		case <-timeout.C:
			b.Fatalf("not drained after 20 min: %+v", pub.Stats())
		}
	}
	drain := time.Since(start)
	connected.Stop()
	timeout.Stop()
	// The publisher counts the deliveries just after the deletions.
	for t := time.Now(); pub.Stats().Delivered < uint64(bundles) && time.Since(t) < 10*time.Second; {
		time.Sleep(time.Millisecond)
	}
	cpu, flt, alloc, sys := cpuTime(b)-cpu0, minorFaults(b)-flt0, allocated()-alloc0, sysTime(b)-sys0
	brkCPU := brokerCPU(b, brk) - brk0
	arSt := arc.stats(b)
	b.StopTimer()
	pprof.StopCPUProfile()
	trace.Stop()
	writeHeap(b, "EDGESEAL_DRAIN_MEMPROFILE", "")
	idle := idleCPU(b, pub)
	st := pub.Stats()
	left := 0
	if err := j.OutboxIDs(ctx, func(string) error { left++; return nil }); err != nil || left != 0 {
		b.Fatalf("outbox not empty after the drain: %d left, %v", left, err)
	}
	if st.Delivered != uint64(bundles) || arSt.logSize != uint64(bundles) || st.Rejected != 0 {
		b.Fatalf("drained %d of %d bundles, archive log %d, publisher %+v", st.Delivered, bundles, arSt.logSize, st)
	}
	receipts, err := agent.ReadReceipts(ctx, j)
	if err != nil || int64(len(receipts)) != bundles {
		b.Fatalf("%d receipts journaled for %d bundles: %v", len(receipts), bundles, err)
	}
	stopPub()
	<-pubDone

	// Baseline: plain paho, same frames, same broker; three runs (one
	// varies by a factor of two on this kind of machine), the median kept.
	// Each run's CPU time, the process's (both paho clients) and the
	// broker's, is kept with it: they say whether the baseline had the
	// cores to itself, and what the same bytes cost without edgeseal.
	type baseRun struct{ d, pub, sub, brk time.Duration }
	var runs []baseRun
	var frameBytes int64
	for run := range pahoRuns {
		k0 := brokerCPU(b, brk)
		d, n, pubCPU, subCPU := pahoBaseline(b, brk.URL, frames, run)
		runs, frameBytes = append(runs, baseRun{d, pubCPU, subCPU, brokerCPU(b, brk) - k0}), n
	}
	slices.SortFunc(runs, func(x, y baseRun) int { return cmp.Compare(x.d, y.d) })
	med := runs[len(runs)/2]
	base := med.d
	var bases []time.Duration
	for _, r := range runs {
		bases = append(bases, r.d.Round(time.Millisecond))
	}

	mb := func(bytes int64, d time.Duration) float64 { return float64(bytes) / 1e6 / d.Seconds() }
	drainRate, baseRate := mb(backlog, drain), mb(frameBytes, base)
	b.ReportMetric(drainRate, "MB/s")
	b.ReportMetric(baseRate, "paho-MB/s")
	b.ReportMetric(100*drainRate/baseRate, "%-of-paho")
	b.ReportMetric(float64(n), "exports")
	b.ReportMetric(float64(bundles), "bundles")
	b.ReportMetric(float64(backlog)/1e6, "backlog-MB")
	b.ReportMetric(drain.Seconds(), "drain-s")
	perBundle := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1e3 / float64(bundles) }
	b.ReportMetric(float64(arSt.receive)/1e6/float64(bundles), "receive-ms/bundle")
	b.ReportMetric(float64(arSt.admit)/1e6/float64(bundles), "admit-ms/bundle")
	// Where a window slot's time goes: the drain's wall time times the
	// window over the bundles is how long each bundle held its slot
	// (send, transit, the archive's receive-ms, the reply's way back, the
	// linger for more receipts, their journaling and the deletes).
	window := st.PeakInFlight
	b.ReportMetric(float64(window), "window")
	b.ReportMetric(float64(drain.Milliseconds())*float64(window)/float64(bundles), "slot-ms/bundle")
	b.ReportMetric(float64(drained.journalNanos.Load())/1e6/float64(bundles), "agent-journal-ms/bundle")
	b.ReportMetric(float64(drained.deleteNanos.Load())/1e6/float64(bundles), "agent-delete-ms/bundle")
	b.ReportMetric(float64(bundles)/float64(max(drained.batches.Load(), 1)), "receipts/commit")
	b.ReportMetric(perBundle(cpu+arSt.cpu), "cpu-ms/bundle")
	b.ReportMetric(perBundle(cpu), "agent-cpu-ms/bundle")
	b.ReportMetric(perBundle(arSt.cpu), "archive-cpu-ms/bundle")
	b.ReportMetric(perBundle(arSt.indexCPU), "archive-index-after-cpu-ms/bundle")
	b.ReportMetric(float64(arSt.peakRSS)/(1<<20), "archive-rss-MiB")
	b.ReportMetric(perBundle(readCPU), "agent-read-cpu-ms/bundle")
	b.ReportMetric(idle*drain.Seconds()/float64(bundles), "agent-idle-cpu-ms/bundle")
	b.ReportMetric(perBundle(brkCPU), "broker-cpu-ms/bundle")
	b.ReportMetric((cpu+arSt.cpu+brkCPU).Seconds()/drain.Seconds(), "cores")
	b.ReportMetric(perBundle(med.pub+med.sub), "paho-cpu-ms/bundle")
	b.ReportMetric(perBundle(med.pub), "paho-pub-cpu-ms/bundle")
	b.ReportMetric(perBundle(med.brk), "paho-broker-cpu-ms/bundle")
	b.ReportMetric((med.pub+med.sub+med.brk).Seconds()/base.Seconds(), "paho-cores")
	floorRate := mb(floor.bytes, floor.d)
	b.ReportMetric(floorRate, "floor-MB/s")
	b.ReportMetric(100*floorRate/baseRate, "floor-%-of-paho")
	b.ReportMetric(float64(floor.cpu.Microseconds())/1e3/float64(bundles), "floor-cpu-ms/bundle")
	b.ReportMetric(float64(floor.brk.Microseconds())/1e3/float64(bundles), "floor-broker-cpu-ms/bundle")
	b.ReportMetric((floor.cpu+floor.brk).Seconds()/floor.d.Seconds(), "floor-cores")
	b.ReportMetric(float64(flt)/float64(bundles), "faults/bundle")
	b.ReportMetric(100*sys.Seconds()/cpu.Seconds(), "agent-sys-%")
	b.ReportMetric(float64(alloc)/1e6/float64(bundles), "alloc-MB/bundle")
	b.ReportMetric(0, "ns/op")
	b.Logf("%d exports journaled in %v: %d bundles, %.1f MB, %d frames; link back: connected after %v, drained in %v (%.1f MB/s); paho QoS 1 with a subscriber, same frames: %v (%.1f MB/s, median of %v); drain = %.0f%% of paho; essential floor %v (%.1f MB/s, %.0f%% of paho)",
		n, journaled.Round(time.Millisecond), bundles, float64(backlog)/1e6, len(frames), connectedAt.Round(time.Millisecond),
		drain.Round(time.Millisecond), drainRate, base.Round(time.Millisecond), baseRate, bases, 100*drainRate/baseRate, floor.d.Round(time.Millisecond), floorRate, 100*floorRate/baseRate)
}

var errStop = errors.New("stop")

// count is the distinct entries deleted so far.
func (o *drainedOutbox) count() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.deleted)
}

// drainedOutbox is the core as the publisher's outbox, closing done once
// want distinct entries were deleted (the end of the drain); it times
// the receipts' journaling (journal, the publisher's OnParsedReceipts)
// and the deletes, and counts the journal commits.
type drainedOutbox struct {
	*agent.Core
	want    int
	done    chan struct{}
	mu      gosync.Mutex
	deleted map[string]bool

	journalNanos, deleteNanos, batches atomic.Int64
}

// journal is Core.JournalParsedReceipts, timed.
func (o *drainedOutbox) journal(ctx context.Context, ids []string, rs []archivesig.ParsedReceipt) error {
	t0 := time.Now()
	defer func() { o.journalNanos.Add(int64(time.Since(t0))) }()
	o.batches.Add(1)
	return o.Core.JournalParsedReceipts(ctx, ids, rs)
}

func (o *drainedOutbox) DeleteOutbox(ctx context.Context, id string) error {
	return o.DeleteOutboxes(ctx, []string{id})
}

func (o *drainedOutbox) DeleteOutboxes(ctx context.Context, ids []string) error {
	t0 := time.Now()
	err := o.Core.DeleteOutboxes(ctx, ids)
	o.deleteNanos.Add(int64(time.Since(t0)))
	if err != nil {
		return err
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.deleted == nil {
		o.deleted = map[string]bool{}
	}
	was := len(o.deleted)
	for _, id := range ids {
		o.deleted[id] = true
	}
	if was < o.want && len(o.deleted) >= o.want {
		close(o.done)
	}
	return nil
}

// receiveNanos is the time from admitting a bundle to its answer (the
// latency of a bundle in the archive; with several in flight these
// overlap), admitNanos the part on the receiving goroutine (reading and
// verifying, in arrival order).
var receiveNanos, admitNanos atomic.Int64

// enroll enrolls and approves the core's device at the archive from its
// bare DEVICE.json.
// drainN is the number of exports a drain journals: drainExports, or
// EDGESEAL_DRAIN_EXPORTS (at least sealEvery) for a quick run.
func drainN(b *testing.B) int {
	s := os.Getenv("EDGESEAL_DRAIN_EXPORTS")
	if s == "" {
		return drainExports
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < sealEvery {
		b.Fatalf("EDGESEAL_DRAIN_EXPORTS=%q: want a number >= %d", s, sealEvery)
	}
	return n
}

// openSiteAndArchive opens in dir the site (TPM simulator, journal,
// core) and an archive (closed when b ends) with the device enrolled
// and approved; nothing is connected to a broker yet.
func openSiteAndArchive(b *testing.B, dir string) (*agent.Core, *store.Journal, *archive.Archive, *trustfile.Trust) {
	ctx := context.Background()
	tp, j := e2etest.OpenDevice(ctx, b, simulator.Open, dir, store.Options{MemTableSize: 8 << 20})
	core, err := agent.Open(ctx, agent.Options{Site: "site1", Device: "dev1", SealEvery: sealEvery, SealInterval: time.Hour}, j, tp)
	if err != nil {
		b.Fatal(err)
	}
	_, akey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	ar, err := archive.Open(ctx, archive.Options{Dir: filepath.Join(dir, "archive"), Key: akey})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { ar.Close() })
	return core, j, ar, enroll(b, ar, tp)
}

// enroll enrolls and approves site1/dev1 (the TPM's keys) at ar.
func enroll(b *testing.B, ar *archive.Archive, tp *tpm.TPM) *trustfile.Trust {
	return enrollAs(b, ar, tp, "site1", "dev1")
}

// journal exports n records from 64 goroutines and seals every sealEvery.
func journal(b *testing.B, core *agent.Core, n int) { journalFrom(b, core, 0, n) }

// journalFrom is journal with export ids from first on.
func journalFrom(b *testing.B, core *agent.Core, first, n int) {
	journalEvery(b, core, first, n, sealEvery)
}

// journalEvery is journalFrom sealing every `every` exports.
func journalEvery(b *testing.B, core *agent.Core, first, n, every int) {
	ctx := context.Background()
	data := []byte(strings.Repeat("x", exportData))
	for done := 0; done < n; done += every {
		var next atomic.Int64
		var wg gosync.WaitGroup
		var failed atomic.Pointer[error]
		for range 64 {
			wg.Go(func() {
				for {
					i := int(next.Add(1)) - 1
					if i >= every {
						return
					}
					id := first + done + i
					d := append(fmt.Appendf(nil, "%09d,", id), data[10:]...)
					_, err := core.Export(ctx, agent.Export{
						Actor:    custody.Actor{Kind: "principal", ID: "bench", Via: "test"},
						ExportID: "e-" + strconv.Itoa(id), App: "bench", Workflow: "records", Purpose: "benchmark",
						Classification: "internal", Retention: "1y", Destination: "archive",
						Policy: wire.FormatHash(sha256.Sum256([]byte("policy"))), MediaType: "text/csv", Data: d,
					})
					if err != nil {
						failed.CompareAndSwap(nil, &err)
						return
					}
				}
			})
		}
		wg.Wait()
		if p := failed.Load(); p != nil {
			b.Fatal(*p)
		}
		if res, err := core.Seal(ctx); err != nil || res == nil {
			b.Fatalf("seal: %v", err)
		}
	}
}

// startArchiveSubscriber runs the archive's side as the daemon does: the
// sync subscriber whose Admit is Archive.Admit (a refusal is answered with
// its signed rejection).
func startArchiveSubscriber(b *testing.B, url string, ar *archive.Archive) {
	stop, err := archiveSubscriber(url, ar)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(stop)
}

// archiveSubscriber starts the archive's sync subscriber (Admit is
// Archive.AdmitHashed, timed into admitNanos and receiveNanos) and waits
// until it is connected; stop ends it.
func archiveSubscriber(url string, ar *archive.Archive) (stop func(), err error) {
	return groupSubscriber(url, ar, "bench-archive", "", 0, nil)
}

// groupSubscriber is archiveSubscriber with its client id, when group is
// set the shared subscription of that group (replicas), and its
// MaxPending (the default when 0).
func groupSubscriber(url string, ar *archive.Archive, clientID, group string, maxPending int, frames sync.FrameStore) (stop func(), err error) {
	s, err := sync.NewSubscriber(sync.SubscriberOptions{Broker: url, ClientID: clientID, Group: group, MaxPending: maxPending, Frames: frames,
		BackoffMin: 50 * time.Millisecond, BackoffMax: 200 * time.Millisecond,
		Admit: func(ctx context.Context, d sync.Delivery) func(context.Context) ([]byte, error) {
			t0 := time.Now()
			t := ar.AdmitHashed(ctx, d.Site, d.Device, d.Hashed)
			admitNanos.Add(int64(time.Since(t0)))
			return func(ctx context.Context) ([]byte, error) {
				reply, err := t.Wait(ctx)
				receiveNanos.Add(int64(time.Since(t0)))
				if _, ok := errors.AsType[*archive.RejectedError](err); ok {
					return reply, nil
				}
				return reply, err
			}
		}})
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Start(ctx) }()
	stop = func() { cancel(); <-done }
	deadline := time.Now().Add(10 * time.Second)
	for !s.Stats().Connected {
		if time.Now().After(deadline) {
			stop()
			return nil, errors.New("archive subscriber not connected")
		}
		time.Sleep(10 * time.Millisecond)
	}
	return stop, nil
}

// pahoBaseline publishes messages of the given sizes at QoS 1 with plain
// paho (asynchronous publishes, persistent session, as the publisher's
// link) while a QoS 1 subscriber in a child process receives them, and
// returns the time until the last one arrived, the bytes sent, and the
// CPU time of the publishing process (paho's publishing client alone)
// and of the subscriber's over that time.
func pahoBaseline(b *testing.B, url string, sizes []int, run int) (d time.Duration, bytes int64, pubCPU, subCPU time.Duration) {
	topic := fmt.Sprintf("bench/paho/%d", run)
	sub := startChild(b, childPahoSub, childURL+"="+url, childTopic+"="+topic, childWant+"="+strconv.Itoa(len(sizes)))
	defer sub.stop()
	pubOpts := mqtt.NewClientOptions().AddBroker(url).SetClientID(fmt.Sprintf("bench-paho-pub-%d", run)).SetCleanSession(false)
	pub := mqtt.NewClient(pubOpts)
	if tok := pub.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		b.Fatalf("paho publisher: %v", tok.Error())
	}
	defer pub.Disconnect(250)
	payloads := map[int][]byte{}
	var total int64
	for _, n := range sizes {
		if payloads[n] == nil {
			payloads[n] = make([]byte, n)
			_, _ = rand.Read(payloads[n])
		}
		total += int64(n)
	}
	sub.send(b, "start")
	cpu0 := cpuTime(b)
	start := time.Now()
	toks := make([]mqtt.Token, 0, len(sizes))
	for _, n := range sizes {
		toks = append(toks, pub.Publish(topic, 1, false, payloads[n]))
	}
	for _, tok := range toks {
		if !tok.WaitTimeout(5*time.Minute) || tok.Error() != nil {
			b.Fatalf("paho publish: %v", tok.Error())
		}
	}
	cpu := cpuTime(b) - cpu0
	n := sub.expect(b, "all")
	d = time.Since(start)
	if len(n) != 1 {
		b.Fatalf("paho subscriber: %v", n)
	}
	return d, total, cpu, time.Duration(n[0])
}
