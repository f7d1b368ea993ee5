package sqlframes_test

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"fmt"
	"log/slog"
	gosync "sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgeseal/edgeseal/internal/mariadbtest"
	"github.com/edgeseal/edgeseal/sync"
	"github.com/edgeseal/edgeseal/sync/mqtttest"
)

// outbox is an in-memory sync.Outbox.
type outbox struct {
	mu  gosync.Mutex
	ids []string
	m   map[string][]byte
}

func (o *outbox) Outbox(_ context.Context, fn func(id string, data []byte) error) error {
	o.mu.Lock()
	ids := append([]string(nil), o.ids...)
	o.mu.Unlock()
	for _, id := range ids {
		o.mu.Lock()
		data, ok := o.m[id]
		o.mu.Unlock()
		if !ok {
			continue
		}
		if err := fn(id, data); err != nil {
			return err
		}
	}
	return nil
}

func (o *outbox) DeleteOutbox(_ context.Context, id string) error {
	o.mu.Lock()
	delete(o.m, id)
	o.mu.Unlock()
	return nil
}

// counting counts the frames a replica's FrameStore got.
type counting struct {
	sync.FrameStore
	frames atomic.Int64
}

func (c *counting) Add(ctx context.Context, source string, frame []byte) (*sync.Complete, error) {
	c.frames.Add(1)
	return c.FrameStore.Add(ctx, source, frame)
}

// TestReplicasMultiFrame: two Subscribers in one shared group of a real
// Mosquitto, each joining frames through its own Store on one MariaDB
// database, and a Publisher sending bundles of many frames: the broker
// deals the frames of each bundle to both replicas, and every bundle is
// delivered exactly once, with its bytes.
func TestReplicasMultiFrame(t *testing.T) {
	brk := mqtttest.Start(t, nil)
	srv := mariadbtest.Start(t)
	stores := openReplicas(t, srv, 2, sync.AssemblerLimits{}, time.Now)
	ctx, cancel := context.WithCancel(context.Background())
	var wg gosync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })

	const bundles = 6
	ob := &outbox{m: map[string][]byte{}}
	want := map[[32]byte]string{}
	for i := range bundles {
		data := make([]byte, 20_000+1000*i)
		for j := range data {
			data[j] = byte(i*31 + j*7 + j/251)
		}
		id := fmt.Sprintf("e%03d", i)
		ob.ids = append(ob.ids, id)
		ob.m[id] = data
		want[sha256.Sum256(data)] = id
	}
	var mu gosync.Mutex
	got := map[[32]byte]int{}
	var bad atomic.Int64
	handler := func(_ context.Context, d sync.Delivery) ([]byte, error) {
		if sha256.Sum256(d.Bundle) != d.Digest || want[d.Digest] != d.ID {
			bad.Add(1)
		}
		mu.Lock()
		got[d.Digest]++
		mu.Unlock()
		return nil, nil // no receipt: the publisher would only send again after ResendAfter
	}
	var counts []*counting
	for i, st := range stores {
		c := &counting{FrameStore: st}
		counts = append(counts, c)
		s, err := sync.NewSubscriber(sync.SubscriberOptions{Broker: brk.URL, ClientID: fmt.Sprint("archive-", i), Group: "archive",
			Handler: handler, Frames: c, Logger: slog.New(slog.DiscardHandler),
			BackoffMin: 50 * time.Millisecond, BackoffMax: 500 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() { defer wg.Done(); _ = s.Start(ctx) }()
		waitFor(t, "subscriber connected", func() bool { return s.Stats().Connected })
	}
	pub, _, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	p, err := sync.NewPublisher(sync.PublisherOptions{Broker: brk.URL, Site: "site1", Device: "dev1", Outbox: ob, ArchiveKey: pub,
		MaxMessage: sync.MinMessage, Tick: 50 * time.Millisecond, ResendAfter: time.Hour,
		BackoffMin: 50 * time.Millisecond, BackoffMax: 500 * time.Millisecond, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	wg.Add(1)
	go func() { defer wg.Done(); _ = p.Start(ctx) }()
	waitFor(t, "every bundle delivered", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(got) == bundles
	})
	time.Sleep(500 * time.Millisecond) // room for a second delivery, which must not come
	mu.Lock()
	defer mu.Unlock()
	for d, n := range got {
		if n != 1 {
			t.Errorf("bundle %s delivered %d times, want once", want[d], n)
		}
	}
	if bad.Load() != 0 {
		t.Errorf("%d deliveries with other bytes or id", bad.Load())
	}
	for i, c := range counts {
		if c.frames.Load() == 0 {
			t.Errorf("replica %d got no frame: the bundles were not split between the replicas", i)
		}
	}
	total := counts[0].frames.Load() + counts[1].frames.Load()
	t.Logf("frames: %d and %d; completed %d and %d", counts[0].frames.Load(), counts[1].frames.Load(),
		stores[0].Stats().Completed, stores[1].Stats().Completed)
	if total < bundles*20 {
		t.Errorf("%d frames in all, want bundles of 20 frames or more", total)
	}
	if c := stores[0].Stats().Completed + stores[1].Stats().Completed; c != bundles {
		t.Errorf("%d completions, want %d", c, bundles)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
