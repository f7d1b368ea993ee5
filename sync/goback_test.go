package sync

import (
	"context"
	gosync "sync"
	"testing"
	"time"

	"github.com/edgeseal/edgeseal/sync/mqtttest"
)

// TestGoBack: the archive answers a later bundle while an earlier one
// got no answer (its bundle or its reply was lost, as when mosquitto
// drops a shared subscription's message while the archive reconnects):
// the publisher sends the earlier one again at once, not after
// ResendAfter (an hour here), and the outbox drains in order.
func TestGoBack(t *testing.T) {
	keys := newArchiveKeys(t)
	for _, tc := range []struct {
		name      string
		loseReply bool // the archive accepts entry 0 but its reply is lost
	}{{"bundle-lost", false}, {"reply-lost", true}} {
		t.Run(tc.name, func(t *testing.T) {
			// A broker each: the first subtest's archive session would
			// stay in the shared group and take its share of messages.
			b := mqtttest.Start(t, nil)
			arch := newFakeArchive(t, keys)
			arch.strict, arch.rejectGaps = true, true
			var mu gosync.Mutex
			dropped := false
			h := func(ctx context.Context, d Delivery) ([]byte, error) {
				mu.Lock()
				drop := d.ID == entryID(0) && !dropped
				dropped = dropped || drop
				mu.Unlock()
				if !drop {
					return arch.handle(ctx, d)
				}
				if tc.loseReply {
					_, err := arch.handle(ctx, d)
					return nil, err
				}
				return nil, nil // as if the broker never delivered it
			}
			startSubscriber(t, b.URL, nil, h, "archive-"+tc.name)
			ob := newMemOutbox()
			for i := range 4 {
				ob.put(entryID(i), bundleBytes(tc.name+entryID(i), 3000))
			}
			o := pubOptions(b.URL, "dev-"+tc.name, ob, keys)
			o.ResendAfter = time.Hour
			p := startPublisher(t, o)
			waitFor(t, "outbox drained and counted", 20*time.Second, func() bool { return ob.len() == 0 && p.Stats().Delivered == 4 })
			st := p.Stats()
			if got := arch.ids("site1/dev-" + tc.name); len(got) != 4 || got[0] != entryID(0) || got[3] != entryID(3) {
				t.Errorf("archive accepted %v, want entries 0..3 in order", got)
			}
			if st.Resent == 0 || st.Delivered != 4 {
				t.Errorf("publisher %+v: want the lost entry resent and 4 delivered", st)
			}
		})
	}
}
