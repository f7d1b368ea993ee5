package drainbench

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/edgeseal/edgeseal/agent"
	"github.com/edgeseal/edgeseal/archive"
	"github.com/edgeseal/edgeseal/bundle/archivesig"
	"github.com/edgeseal/edgeseal/store"
	"github.com/edgeseal/edgeseal/sync"
	"github.com/edgeseal/edgeseal/sync/mqtttest"
)

// drainRun is one drain of drainOnce.
type drainRun struct {
	exports, bundles int
	backlog          int64         // bundle bytes drained
	journalCPU       time.Duration // the process's CPU journaling the backlog (the agent's sealing included)
	d                time.Duration // the drain's wall time
	cpu, brk         time.Duration // the process's and Mosquitto's CPU over the drain
}

// drainSite is the site, the broker and the archive both drains of
// BenchmarkDrainEncrypted share (the TPM simulator is one a process).
type drainSite struct {
	core  *agent.Core
	j     *store.Journal
	ar    *archive.Archive
	url   string
	brk   *mqtttest.Broker
	first int // the next export id
}

func newDrainSite(b *testing.B) *drainSite {
	brk := mqtttest.Start(b, nil)
	core, j, ar, _ := openSiteAndArchive(b, b.TempDir())
	startArchiveSubscriber(b, brk.URL, ar)
	return &drainSite{core: core, j: j, ar: ar, url: brk.URL, brk: brk}
}

// drainOnce journals n exports offline (no publisher), every payload
// sealed to the archive's content key when encrypt is set (as an agent
// with encryption.content_key does), then starts a publisher and drains
// them to the archive, which trial-decrypts every encrypted payload
// before it accepts a bundle, until the outbox is empty and every
// bundle is receipted.
func (s *drainSite) drainOnce(b *testing.B, n int, encrypt bool) drainRun {
	ctx := context.Background()
	if encrypt {
		raw, err := s.ar.NewContentKey(ctx)
		if err != nil {
			b.Fatal(err)
		}
		k, err := agent.ContentKeyFromAnnouncement(raw, archivesig.NewArchiveKeys(archive.DefaultName, s.ar.PublicKey()), time.Now())
		if err != nil || !s.core.UseContentKey(k) {
			b.Fatalf("content key: %v", err)
		}
	}
	logged0 := s.ar.LogSize()
	settle(b)
	c0 := cpuTime(b)
	journalFrom(b, s.core, s.first, n)
	s.first += n
	run := drainRun{exports: n, journalCPU: cpuTime(b) - c0}
	err := s.j.Outbox(ctx, func(_ string, data []byte) error {
		run.backlog += int64(len(data))
		run.bundles++
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	pub, err := sync.NewPublisher(sync.PublisherOptions{
		Broker: s.url, Site: "site1", Device: "dev1", Outbox: s.core, Window: envInt("EDGESEAL_DRAIN_WINDOW"),
		ArchiveKey: s.ar.PublicKey(), ArchiveKeyID: s.ar.KeyID(), OnParsedReceipts: s.core.JournalParsedReceipts,
	})
	if err != nil {
		b.Fatal(err)
	}
	pctx, stopPub := context.WithCancel(ctx)
	pubDone := make(chan error, 1)
	settle(b)
	cpu0, brk0 := cpuTime(b), brokerCPU(b, s.brk)
	start := time.Now()
	go func() { pubDone <- pub.Start(pctx) }()
	for {
		left := 0
		if err := s.j.OutboxIDs(ctx, func(string) error { left++; return errStop }); err != nil && !errors.Is(err, errStop) {
			b.Fatal(err)
		}
		if left == 0 {
			break
		}
		if time.Since(start) > 20*time.Minute {
			b.Fatalf("not drained after 20 min: %+v", pub.Stats())
		}
		time.Sleep(20 * time.Millisecond)
	}
	for pub.Stats().Delivered < uint64(run.bundles) && time.Since(start) < 20*time.Minute {
		time.Sleep(time.Millisecond)
	}
	run.d = time.Since(start)
	run.cpu, run.brk = cpuTime(b)-cpu0, brokerCPU(b, s.brk)-brk0
	st := pub.Stats()
	stopPub()
	<-pubDone
	if st.Delivered != uint64(run.bundles) || s.ar.LogSize()-logged0 != uint64(run.bundles) || st.Rejected != 0 {
		b.Fatalf("drained %d of %d bundles, archive log +%d, publisher %+v", st.Delivered, run.bundles, s.ar.LogSize()-logged0, st)
	}
	return run
}

// BenchmarkDrainEncrypted runs the long-offline drain twice in one
// process, on one site, broker and archive (the backlog journaled
// offline each time, then drained by a new publisher): first as
// BenchmarkDrain does (payloads in clear), then with every payload
// sealed to the archive's content key (HPKE ML-KEM-768+X25519,
// HKDF-SHA256, AES-256-GCM), which the archive opens before it accepts
// each bundle. For each (plain-, enc-) it reports MB/s (bundle bytes;
// a sealed payload carries its 1,088-byte encapsulated key and a tag, so
// the encrypted backlog is larger), exports/s (the same exports drained
// per second: the comparable rate), backlog-MB, cpu-ms/bundle and
// broker-cpu-ms/bundle over the drain (the process: agent, archive with
// its trial decryption, both MQTT clients), and journal-cpu-us/export,
// the process's CPU journaling the backlog, where the agent's sealing of
// each payload lands. EDGESEAL_DRAIN_EXPORTS overrides the number of
// exports.
func BenchmarkDrainEncrypted(b *testing.B) {
	n := drainN(b)
	receiveNanos.Store(0)
	admitNanos.Store(0)
	site := newDrainSite(b)
	plain := site.drainOnce(b, n, false)
	enc := site.drainOnce(b, n, true)
	if receipts, err := agent.ReadReceipts(context.Background(), site.j); err != nil || len(receipts) != plain.bundles+enc.bundles {
		b.Fatalf("%d receipts journaled for %d bundles: %v", len(receipts), plain.bundles+enc.bundles, err)
	}
	b.ResetTimer()
	for name, r := range map[string]drainRun{"plain-": plain, "enc-": enc} {
		b.ReportMetric(float64(r.backlog)/1e6/r.d.Seconds(), name+"MB/s")
		b.ReportMetric(float64(r.exports)/r.d.Seconds(), name+"exports/s")
		b.ReportMetric(float64(r.backlog)/1e6, name+"backlog-MB")
		b.ReportMetric(float64(r.cpu.Microseconds())/1e3/float64(r.bundles), name+"cpu-ms/bundle")
		b.ReportMetric(float64(r.brk.Microseconds())/1e3/float64(r.bundles), name+"broker-cpu-ms/bundle")
		b.ReportMetric(float64(r.journalCPU.Microseconds())/float64(r.exports), name+"journal-cpu-us/export")
	}
	b.ReportMetric(100*enc.d.Seconds()/plain.d.Seconds()-100, "enc-%-drain-time")
	b.ReportMetric(0, "ns/op")
	b.Logf("%d exports, %d bundles each; plain: %.1f MB in %v (%.1f MB/s, %.1f ms CPU a bundle, journaling %.0f us CPU an export); encrypted: %.1f MB in %v (%.1f MB/s, %.1f ms CPU a bundle, journaling %.0f us CPU an export)",
		n, plain.bundles, float64(plain.backlog)/1e6, plain.d.Round(time.Millisecond), float64(plain.backlog)/1e6/plain.d.Seconds(),
		float64(plain.cpu.Microseconds())/1e3/float64(plain.bundles), float64(plain.journalCPU.Microseconds())/float64(plain.exports),
		float64(enc.backlog)/1e6, enc.d.Round(time.Millisecond), float64(enc.backlog)/1e6/enc.d.Seconds(),
		float64(enc.cpu.Microseconds())/1e3/float64(enc.bundles), float64(enc.journalCPU.Microseconds())/float64(enc.exports))
}
