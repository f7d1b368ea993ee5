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
