package sync

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/edgeseal/edgeseal/sync/mqtttest"
)

// TestSubscriberRedelivery: an archive that dies inside its Handler has not
// acknowledged the message, so the broker delivers it again to the next
// archive process with the same client id, which answers it.
func TestSubscriberRedelivery(t *testing.T) {
	b := mqtttest.Start(t, nil)
	keys := newArchiveKeys(t)
	entered := make(chan struct{}, 1)
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	stuck := func(ctx context.Context, d Delivery) ([]byte, error) {
		select {
		case entered <- struct{}{}:
		default:
		}
		<-release // "crashes" here: never returns while the test needs it
		return nil, fmt.Errorf("dead archive")
	}
	s1, err := NewSubscriber(SubscriberOptions{Broker: b.URL, ClientID: "archive-1", Handler: stuck, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	ctx1, stop1 := context.WithCancel(context.Background())
	done1 := make(chan error, 1)
	go func() { done1 <- s1.Start(ctx1) }()
	waitFor(t, "first archive connected", 10*time.Second, func() bool { return s1.Stats().Connected })

	ob := newMemOutbox()
	ob.put(entryID(0), bundleBytes("redeliver", 5000))
	o := pubOptions(b.URL, "dev1", ob, keys)
	o.ResendAfter = time.Hour // only the broker's redelivery can deliver it
	p := startPublisher(t, o)
	select {
	case <-entered:
	case <-time.After(10 * time.Second):
		t.Fatal("handler never called")
	}
	stop1() // the archive goes away without returning from the Handler
	select {
	case <-done1:
	case <-time.After(10 * time.Second):
		t.Fatal("subscriber did not stop")
	}

	arch := newFakeArchive(t, keys)
	startSubscriber(t, b.URL, nil, arch.handle, "archive-1")
	waitFor(t, "redelivered and receipted", 20*time.Second, func() bool { return ob.len() == 0 })
	if st := p.Stats(); arch.distinct() != 1 || st.BundlesSent != 1 || st.Resent != 0 {
		t.Errorf("archive saw %d bundles; publisher %+v (want one send, the broker redelivered)", arch.distinct(), st)
	}
}

// hiddenOutbox lists no entries to send (OutboxIDs) but still finds them
// by digest (Outbox), so a publisher on it deletes an entry only when a
// receipt for it arrives, never by sending it.
type hiddenOutbox struct{ *memOutbox }

func (hiddenOutbox) OutboxIDs(context.Context, func(string) error) error { return nil }
func (hiddenOutbox) OutboxGet(context.Context, string) ([]byte, bool, error) {
	return nil, false, nil
}

// TestPublisherReplyRedelivery: an agent that stops while journaling a
// receipt has not acknowledged it, so the broker delivers it again to the
// next agent process with the same client id, which deletes the entry.
func TestPublisherReplyRedelivery(t *testing.T) {
	b := mqtttest.Start(t, nil)
	keys := newArchiveKeys(t)
	arch := newFakeArchive(t, keys)
	startSubscriber(t, b.URL, nil, arch.handle, "archive-1")

	ob := newMemOutbox()
	ob.put(entryID(0), bundleBytes("reply-redeliver", 5000))
	entered := make(chan struct{}, 1)
	o := pubOptions(b.URL, "dev1", ob, keys)
	o.ResendAfter = time.Hour
	o.Logger = testLogger(t)
	o.OnReceipts = func(ctx context.Context, _ []string, _ [][]byte) error {
		select {
		case entered <- struct{}{}:
		default:
		}
		<-ctx.Done() // the agent stops while the receipt is being journaled
		return ctx.Err()
	}
	p1, err := NewPublisher(o)
	if err != nil {
		t.Fatal(err)
	}
	ctx1, stop1 := context.WithCancel(context.Background())
	done1 := make(chan error, 1)
	go func() { done1 <- p1.Start(ctx1) }()
	select {
	case <-entered:
	case <-time.After(20 * time.Second):
		t.Fatal("no receipt reached the first publisher")
	}
	stop1()
	select {
	case <-done1:
	case <-time.After(10 * time.Second):
		t.Fatal("first publisher did not stop")
	}
	if !ob.has(entryID(0)) {
		t.Fatal("entry deleted although its receipt was never journaled")
	}

	var journaled []string
	o.Outbox = hiddenOutbox{ob} // the second process sends nothing
	o.OnReceipts = func(_ context.Context, ids []string, _ [][]byte) error {
		journaled = append(journaled, ids...)
		return nil
	}
	p2 := startPublisher(t, o)
	waitFor(t, "receipt redelivered by the broker", 20*time.Second, func() bool { return !ob.has(entryID(0)) })
	if st := p2.Stats(); st.BundlesSent != 0 || st.Delivered != 1 || len(journaled) != 1 || arch.distinct() != 1 {
		t.Errorf("second publisher %+v, journaled %q, archive saw %d bundles (want: nothing sent, one receipt redelivered)", st, journaled, arch.distinct())
	}
}
