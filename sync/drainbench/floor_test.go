package drainbench

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/edgeseal/edgeseal/agent"
	"github.com/edgeseal/edgeseal/archive"
	"github.com/edgeseal/edgeseal/bundle"
	"github.com/edgeseal/edgeseal/bundle/trustfile"
	"github.com/edgeseal/edgeseal/bundle/verify"
	"github.com/edgeseal/edgeseal/store"
	"github.com/edgeseal/edgeseal/sync"
)

// floorInFlight bounds the frames the floor's publisher has sent and the
// broker not yet acknowledged: 8 bundles of 7 frames each here, more
// than the publisher keeps unacknowledged (32 frames); the floor has no
// receipts, so no window of bundles awaiting them.
const floorInFlight = 56

// floorRun is one timed run and the CPU time it took, the process's and
// the broker's.
type floorRun struct {
	d, cpu, brk time.Duration
	bytes       int64 // bundle bytes carried
}

// essentialFloor times the least any drain must do with these bundles
// on these cores, through the same broker: paho QoS 1 as in the baseline,
// plus only the work the issue makes part of delivery. The publisher
// reads and decrypts each bundle from the outbox (as the publisher does)
// and sends its frames; the subscriber reassembles them and checks the
// SHA-256 (sync.Assembler), reads and verifies the bundle against the
// device's trust, chaining each bundle's state to the next
// (verify.Verify, the archive's check), and stores it write-once
// (archive.FSStore: temp file, fsync, link, fsync of the directory),
// and makes its custody durable in groups (floor_custody_test.go: the
// log entries, a signed checkpoint, the signed receipts with their
// inclusion proofs, the acceptances and the chain state, each group one
// synced commit of each), verifying on one goroutine and storing and
// committing on another, as the archive does. It leaves out everything
// else the drain does: the archive's export index, the receipts' way
// back, their journaling and the outbox deletes. Its rate is an upper
// bound for the drain on this machine.
func essentialFloor(b *testing.B, url string, core *agent.Core, j *store.Journal, tr *trustfile.Trust, dir string, brk func() time.Duration) floorRun {
	ctx := context.Background()
	var ids []string
	if err := j.OutboxIDs(ctx, func(id string) error { ids = append(ids, id); return nil }); err != nil {
		b.Fatal(err)
	}
	objects, err := archive.NewFSStore(dir)
	if err != nil {
		b.Fatal(err)
	}
	run := filepath.Base(dir) // each run its own topic and MQTT sessions
	topic := "bench/floor/" + run
	asm := sync.NewAssembler(sync.AssemblerLimits{})
	complete := make(chan *sync.Complete, 1)
	var failed atomic.Pointer[error]
	fail := func(err error) { failed.CompareAndSwap(nil, &err) }
	stored := make(chan struct{}) // closed when the last bundle is stored or on failure
	subOpts := mqtt.NewClientOptions().AddBroker(url).SetClientID("bench-floor-sub-" + run).SetCleanSession(false).SetOrderMatters(true)
	sub := mqtt.NewClient(subOpts)
	if tok := sub.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		b.Fatalf("floor subscriber: %v", tok.Error())
	}
	defer sub.Disconnect(250)
	if tok := sub.Subscribe(topic, 1, func(_ mqtt.Client, m mqtt.Message) {
		c, err := asm.Add("floor", m.Payload())
		if err != nil {
			fail(err)
			return
		}
		if c != nil {
			select {
			case complete <- c:
			case <-stored:
			}
		}
	}); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		b.Fatalf("floor subscribe: %v", tok.Error())
	}
	// Verification in arrival order on one goroutine; each verified
	// bundle's store starts at once on its own goroutine, and the custody
	// of what is verified is committed on another, overlapping the next
	// verifications (as the archive's pipeline: its queue depth, its
	// groups).
	verified := make(chan floorBundle, floorQueue)
	go func() {
		defer close(verified)
		var prev *verify.State
		for range ids {
			var c *sync.Complete
			select {
			case c = <-complete:
			case <-stored:
				return
			case <-time.After(5 * time.Minute):
				fail(fmt.Errorf("floor: no bundle for 5 min"))
				return
			}
			bb, err := bundle.ReadBytes(c.Bundle, bundle.DefaultLimits)
			if err != nil {
				fail(fmt.Errorf("floor: bundle %s: %w", c.ID, err))
				return
			}
			rep := verify.Verify(bb, tr, prev)
			if !rep.OK() {
				fail(fmt.Errorf("floor: bundle %s failed %s", c.ID, strings.Join(rep.Failed(), ", ")))
				return
			}
			prev = rep.State
			fb := floorBundle{c: c, st: rep.State, put: make(chan error, 1)}
			go func() { fb.put <- objects.PutHashed(ctx, c.Hashed) }()
			select {
			case verified <- fb:
			case <-stored:
				return
			}
		}
	}()
	custody := openCustodyFloor(b, filepath.Join(dir, "custody"))
	go func() {
		defer close(stored)
		n := 0
		for fb := range verified {
			// A group: what is verified by now (as the archive's
			// committer takes what is queued), each stored write-once,
			// then its custody made durable.
			g := []floorBundle{fb}
		fill:
			for len(g) < floorGroup {
				select {
				case fb, ok := <-verified:
					if !ok {
						break fill
					}
					g = append(g, fb)
				default:
					break fill
				}
			}
			for _, fb := range g {
				if err := <-fb.put; err != nil {
					fail(err)
					return
				}
			}
			if err := custody.commit(ctx, "site1/dev1", g); err != nil {
				fail(err)
				return
			}
			n += len(g)
		}
		if n != len(ids) {
			fail(fmt.Errorf("floor: %d of %d bundles stored", n, len(ids)))
		}
	}()
	pub := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(url).SetClientID("bench-floor-pub-" + run).SetCleanSession(false))
	if tok := pub.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		b.Fatalf("floor publisher: %v", tok.Error())
	}
	defer pub.Disconnect(250)

	cpu0, brk0 := cpuTime(b), brk()
	start := time.Now()
	var buf []byte
	var total int64
	var toks []mqtt.Token
	for _, id := range ids {
		data, digest, ok, err := core.OutboxGetDigest(ctx, id, &buf)
		if err != nil || !ok {
			b.Fatalf("floor: outbox %s: ok %v, %v", id, ok, err)
		}
		total += int64(len(data))
		for _, f := range sync.EncodeChunks(id, digest, data, sync.DefaultMaxMessage) {
			// At most floorInFlight frames unacknowledged by the broker,
			// as the publisher's window bounds what it holds.
			if n := len(toks); n >= floorInFlight {
				if tok := toks[n-floorInFlight]; !tok.WaitTimeout(5*time.Minute) || tok.Error() != nil {
					b.Fatalf("floor publish: %v", tok.Error())
				}
			}
			toks = append(toks, pub.Publish(topic, 1, false, f))
		}
	}
	for _, tok := range toks {
		if !tok.WaitTimeout(5*time.Minute) || tok.Error() != nil {
			b.Fatalf("floor publish: %v", tok.Error())
		}
	}
	<-stored
	r := floorRun{d: time.Since(start), cpu: cpuTime(b) - cpu0, brk: brk() - brk0, bytes: total}
	custody.close()
	if p := failed.Load(); p != nil {
		b.Fatal(*p)
	}
	return r
}
