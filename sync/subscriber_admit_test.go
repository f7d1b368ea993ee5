package sync

import (
	"context"
	"fmt"
	"slices"
	gosync "sync"
	"testing"
	"time"

	"github.com/edgeseal/edgeseal/sync/mqtttest"
)

// TestAdmitPipelinesInOrder: with Admit, the next delivery is admitted
// while earlier answers are still pending (several in flight at once),
// and answers that are ready out of order (the first bundle's answer
// comes last) are still published in arrival order, so the agent gets
// its receipts in the order it sent and sends nothing twice.
func TestAdmitPipelinesInOrder(t *testing.T) {
	b := mqtttest.Start(t, nil)
	keys := newArchiveKeys(t)
	var (
		mu          gosync.Mutex
		admitted    []string
		outstanding int
		peak        int
	)
	admit := func(ctx context.Context, d Delivery) func(context.Context) ([]byte, error) {
		mu.Lock()
		admitted = append(admitted, d.ID)
		outstanding++
		peak = max(peak, outstanding)
		first := len(admitted) == 1
		mu.Unlock()
		// The answer is ready after a delay of its own: the first one
		// after the next ones.
		delay := 20 * time.Millisecond
		if first {
			delay = 600 * time.Millisecond
		}
		ready := time.After(delay)
		return func(ctx context.Context) ([]byte, error) {
			select {
			case <-ready:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
			mu.Lock()
			outstanding--
			mu.Unlock()
			return keys.receipt(t, d.Digest, d.Site+"/"+d.Device), nil
		}
	}
	s, err := NewSubscriber(SubscriberOptions{Broker: b.URL, ClientID: "archive-admit", Admit: admit, Logger: testLogger(t),
		BackoffMin: 50 * time.Millisecond, BackoffMax: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	run(t, "subscriber", s.Start)
	waitFor(t, "subscriber connected", 10*time.Second, func() bool { return s.Stats().Connected })

	ob := newMemOutbox()
	const n = 8
	var want []string
	for i := range n {
		ob.put(entryID(i), bundleBytes(fmt.Sprint("admit", i), 3000))
		want = append(want, entryID(i))
	}
	var receipted []string
	o := pubOptions(b.URL, "dev1", ob, keys)
	o.Window = 4
	o.ResendAfter = time.Minute // only a reply out of order would resend
	o.OnReceipt = func(_ context.Context, id string, _ []byte) error {
		mu.Lock()
		receipted = append(receipted, id)
		mu.Unlock()
		return nil
	}
	p := startPublisher(t, o)
	waitFor(t, "outbox drained and counted", 20*time.Second, func() bool { return ob.len() == 0 && p.Stats().Delivered == n })

	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(admitted, want) {
		t.Errorf("admitted %v, want %v", admitted, want)
	}
	if !slices.Equal(receipted, want) {
		t.Errorf("receipts reached the agent in the order %v, want %v", receipted, want)
	}
	if peak < 2 {
		t.Errorf("at most %d delivery admitted and unanswered at once: not pipelined", peak)
	}
	if st := p.Stats(); st.Resent != 0 || st.Delivered != n {
		t.Errorf("publisher %+v: want %d delivered, none resent", st, n)
	}
	if st := s.Stats(); st.Handled != n || st.Replies != n || st.HandlerErrors != 0 {
		t.Errorf("subscriber %+v", st)
	}
	t.Logf("peak %d admitted and unanswered", peak)
}

// TestSubscriberNeedsOneHandler: exactly one of Handler and Admit.
func TestSubscriberNeedsOneHandler(t *testing.T) {
	h := func(context.Context, Delivery) ([]byte, error) { return nil, nil }
	a := func(context.Context, Delivery) func(context.Context) ([]byte, error) { return nil }
	for _, o := range []SubscriberOptions{{}, {Handler: h, Admit: a}} {
		o.Broker, o.ClientID = "tcp://127.0.0.1:1883", "x"
		if _, err := NewSubscriber(o); err == nil {
			t.Errorf("handler %v admit %v: accepted", o.Handler != nil, o.Admit != nil)
		}
	}
	for _, o := range []SubscriberOptions{{Handler: h}, {Admit: a}} {
		o.Broker, o.ClientID = "tcp://127.0.0.1:1883", "x"
		if _, err := NewSubscriber(o); err != nil {
			t.Errorf("handler %v admit %v: %v", o.Handler != nil, o.Admit != nil, err)
		}
	}
}
