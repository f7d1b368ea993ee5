package drainbench

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	gosync "sync"
	"sync/atomic"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/edgeseal/edgeseal/archive"
	"github.com/edgeseal/edgeseal/bundle"
	"github.com/edgeseal/edgeseal/bundle/verify"
	"github.com/edgeseal/edgeseal/sync"
	"github.com/edgeseal/edgeseal/sync/mqtttest"
)

// replicaFloor is essentialFloor for several devices at once: the least
// any archive must do with the devices' outbox bundles on these cores,
// through the same broker. One paho client reads each bundle from its
// device's outbox (as the publisher does) and publishes its frames at
// QoS 1 on the device's own topic, taking the devices in turn, with at
// most the drain's windows' frames unacknowledged; one paho subscriber
// reassembles them and checks the SHA-256 (sync.Assembler), and per
// device a goroutine reads and verifies each bundle against the
// device's trust in chain order (verify.Verify, each bundle's state
// chained to the next: the archive's check) and stores it write-once
// (archive.FSStore: temp file, fsync, link, fsync of the directory),
// devices in parallel. Nothing else: no log, chain state, index,
// receipts, answers nor their journaling. Its rate is an upper bound
// for an archive on this machine.
func replicaFloor(b *testing.B, brk *mqtttest.Broker, devs []*replicaDevice, dir string) floorRun {
	ctx := context.Background()
	objects, err := archive.NewFSStore(dir)
	if err != nil {
		b.Fatal(err)
	}
	run := filepath.Base(dir)
	prefix := "bench/rfloor/" + run + "/"
	var failed atomic.Pointer[error]
	fail := func(err error) { failed.CompareAndSwap(nil, &err) }
	quit := make(chan struct{}) // closed on failure
	var quitOnce gosync.Once
	stop := func(err error) { fail(err); quitOnce.Do(func() { close(quit) }) }

	ids := make([][]string, len(devs))
	lanes := map[string]chan *sync.Complete{}
	var wg gosync.WaitGroup
	total := 0
	for k, d := range devs {
		if err := d.j.OutboxIDs(ctx, func(id string) error { ids[k] = append(ids[k], id); return nil }); err != nil {
			b.Fatal(err)
		}
		total += len(ids[k])
		lane := make(chan *sync.Complete, 8)
		lanes[prefix+d.name] = lane
		want, tr := len(ids[k]), d.trust
		wg.Go(func() {
			var prev *verify.State
			for range want {
				var c *sync.Complete
				select {
				case c = <-lane:
				case <-quit:
					return
				case <-time.After(5 * time.Minute):
					stop(fmt.Errorf("floor: no bundle for 5 min"))
					return
				}
				bb, err := bundle.ReadBytes(c.Bundle, bundle.DefaultLimits)
				if err != nil {
					stop(fmt.Errorf("floor: bundle %s: %w", c.ID, err))
					return
				}
				rep := verify.Verify(bb, tr, prev)
				if !rep.OK() {
					stop(fmt.Errorf("floor: bundle %s failed %s", c.ID, strings.Join(rep.Failed(), ", ")))
					return
				}
				prev = rep.State
				if err := objects.PutHashed(ctx, c.Hashed); err != nil {
					stop(err)
					return
				}
			}
		})
	}
	asm := sync.NewAssembler(sync.AssemblerLimits{})
	sub := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(brk.URL).SetClientID("bench-rfloor-sub-" + run).SetCleanSession(false).SetOrderMatters(true))
	if tok := sub.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		b.Fatalf("floor subscriber: %v", tok.Error())
	}
	defer sub.Disconnect(250)
	if tok := sub.Subscribe(prefix+"+", 1, func(_ mqtt.Client, m mqtt.Message) {
		c, err := asm.Add(m.Topic(), m.Payload())
		if err != nil {
			stop(err)
			return
		}
		if c != nil {
			select {
			case lanes[m.Topic()] <- c:
			case <-quit:
			}
		}
	}); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		b.Fatalf("floor subscribe: %v", tok.Error())
	}
	pub := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(brk.URL).SetClientID("bench-rfloor-pub-" + run).SetCleanSession(false))
	if tok := pub.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		b.Fatalf("floor publisher: %v", tok.Error())
	}
	defer pub.Disconnect(250)

	inFlight := floorInFlight * len(devs)
	cpu0, brk0 := cpuTime(b), brokerCPU(b, brk)
	start := time.Now()
	var buf []byte
	var bytes int64
	var toks []mqtt.Token
	for i := 0; ; i++ {
		more := false
		for k, d := range devs {
			if i >= len(ids[k]) {
				continue
			}
			more = true
			id := ids[k][i]
			data, digest, ok, err := d.core.OutboxGetDigest(ctx, id, &buf)
			if err != nil || !ok {
				b.Fatalf("floor: outbox %s %s: ok %v, %v", d.name, id, ok, err)
			}
			bytes += int64(len(data))
			for _, f := range sync.EncodeChunks(id, digest, data, sync.DefaultMaxMessage) {
				if n := len(toks); n >= inFlight {
					if tok := toks[n-inFlight]; !tok.WaitTimeout(5*time.Minute) || tok.Error() != nil {
						b.Fatalf("floor publish: %v", tok.Error())
					}
				}
				toks = append(toks, pub.Publish(prefix+d.name, 1, false, f))
			}
		}
		if !more {
			break
		}
	}
	for _, tok := range toks {
		if !tok.WaitTimeout(5*time.Minute) || tok.Error() != nil {
			b.Fatalf("floor publish: %v", tok.Error())
		}
	}
	wg.Wait()
	r := floorRun{d: time.Since(start), cpu: cpuTime(b) - cpu0, brk: brokerCPU(b, brk) - brk0, bytes: bytes}
	if p := failed.Load(); p != nil {
		b.Fatal(*p)
	}
	if total == 0 {
		b.Fatal("floor: no bundle in the outboxes")
	}
	return r
}
