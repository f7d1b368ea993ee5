package sync

import (
	"crypto/sha256"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/edgeseal/edgeseal/sync/mqtttest"
)

// TestBrokerRestart stops and restarts mosquitto (persistence on) while two
// devices stream: nothing is lost, everything is delivered, first
// deliveries keep each device's order, duplicates are tolerated.
func TestBrokerRestart(t *testing.T) {
	t.Run("gap-error", func(t *testing.T) { testBrokerRestart(t, false) })
	// archive/ answers a gap with a signed rejection; the publisher sends
	// the rejected later bundles again once the missing one is delivered.
	t.Run("gap-rejected", func(t *testing.T) { testBrokerRestart(t, true) })
}

func testBrokerRestart(t *testing.T, rejectGaps bool) {
	b := mqtttest.Start(t, nil)
	keys := newArchiveKeys(t)
	arch := newFakeArchive(t, keys)
	arch.delay = 5 * time.Millisecond
	// After a restart mosquitto can drop what a device publishes before the
	// archive has re-subscribed; the archive then sees a gap, answers
	// nothing, and the agent's go-back-N resend restores the order.
	arch.strict = true
	arch.rejectGaps = rejectGaps
	startSubscriber(t, b.URL, nil, arch.handle, "archive-1")
	const n = 40
	devices := []string{"dev1", "dev2"}
	obs := map[string]*memOutbox{}
	var pubs []*Publisher
	for _, dev := range devices {
		ob := newMemOutbox()
		for i := range n {
			ob.put(entryID(i), bundleBytes(fmt.Sprint(dev, i), 20_000+i))
		}
		obs[dev] = ob
		o := pubOptions(b.URL, dev, ob, keys)
		o.MaxMessage = 8 << 10 // 3 frames a bundle: restarts land mid-bundle
		o.ResendAfter = 1500 * time.Millisecond
		pubs = append(pubs, startPublisher(t, o))
	}
	left := func() int { return obs["dev1"].len() + obs["dev2"].len() }
	for r := range 3 {
		target := 2*n - (r+1)*2*n/5
		waitFor(t, fmt.Sprintf("progress before restart %d", r), 30*time.Second, func() bool { return left() <= target })
		b.Restart()
	}
	defer func() {
		if t.Failed() { // what was left, for the next one who reads this
			for i, p := range pubs {
				p.mu.Lock()
				t.Logf("%s: outbox %d, stats %+v, held %v, gap-held %v, in flight %d",
					devices[i], obs[devices[i]].len(), p.stats, p.held, p.gapHeld, len(p.inflight))
				p.mu.Unlock()
			}
		}
	}()
	waitFor(t, "all delivered after restarts", 40*time.Second, func() bool {
		return left() == 0 && pubs[0].Stats().Delivered == n && pubs[1].Stats().Delivered == n
	})
	dups := 0
	for _, dev := range devices {
		for i := range n {
			c := arch.count(sha256.Sum256(bundleBytes(fmt.Sprint(dev, i), 20_000+i)))
			if c == 0 {
				t.Errorf("%s bundle %d never reached the archive", dev, i)
			}
			dups += c - 1
		}
		if got := arch.ids("site1/" + dev); !slices.IsSorted(got) || len(got) != n {
			t.Errorf("%s first-delivery order %v", dev, got)
		}
	}
	var resent, requeued uint64
	for _, p := range pubs {
		st := p.Stats()
		resent += st.Resent
		requeued += st.Requeued
		if st.Delivered != n {
			t.Errorf("delivered %d, want %d (%+v)", st.Delivered, n, st)
		}
	}
	t.Logf("3 broker restarts: %d duplicate deliveries at the archive, %d gaps refused, %d bundles resent, %d rejected ones requeued",
		dups, arch.gaps, resent, requeued)
}
