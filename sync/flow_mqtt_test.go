package sync

import (
	"context"
	"crypto/sha256"
	"fmt"
	gosync "sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/edgeseal/edgeseal/sync/mqtttest"
)

// TestWindow: with Window 2 and an archive that does not answer, exactly
// two bundles are out and the rest wait; once it answers, all arrive and
// the window was never exceeded.
func TestWindow(t *testing.T) {
	b := mqtttest.Start(t, nil)
	keys := newArchiveKeys(t)
	arch := newFakeArchive(t, keys)
	arch.setReply(func(Delivery) []byte { return nil }) // silent archive
	startSubscriber(t, b.URL, nil, arch.handle, "archive-1")
	ob := newMemOutbox()
	for i := range 7 {
		ob.put(entryID(i), bundleBytes(fmt.Sprint("win", i), 4000))
	}
	o := pubOptions(b.URL, "dev1", ob, keys)
	o.Window = 2
	o.ResendAfter = time.Hour // only the window limits what is sent
	p := startPublisher(t, o)
	waitFor(t, "two bundles at the archive", 10*time.Second, func() bool { return arch.distinct() >= 2 })
	time.Sleep(500 * time.Millisecond) // ten ticks
	st := p.Stats()
	if d := arch.distinct(); d != 2 || st.InFlight != 2 || st.BundlesSent != 2 || st.PeakInFlight != 2 {
		t.Fatalf("silent archive: %d distinct bundles at the archive, stats %+v; want 2 in flight", d, st)
	}
	if ids := arch.ids("site1/dev1"); len(ids) != 2 || ids[0] != entryID(0) || ids[1] != entryID(1) {
		t.Errorf("first bundles %v", ids)
	}
	arch.setReply(nil)
	// The first two are only answered when sent again (the archive gave no
	// receipt): a reconnect or ResendAfter does it; Wake does not.
	p.mu.Lock()
	for _, f := range p.inflight {
		f.sent = time.Now().Add(-2 * time.Hour)
	}
	p.mu.Unlock()
	p.Wake()
	waitFor(t, "outbox drained and counted", 20*time.Second, func() bool { return ob.len() == 0 && p.Stats().Delivered == 7 })
	if st := p.Stats(); st.PeakInFlight > 2 || st.Delivered != 7 {
		t.Errorf("stats %+v", st)
	}
}

// TestDefaultWindow: with the default window and an archive that does
// not answer, DefaultWindow bundles are out and the rest wait, and the
// archive's subscriber, at its default bound, took every one of them (a
// device's window fits in what it holds pending, so one draining device
// never makes it stop reading).
func TestDefaultWindow(t *testing.T) {
	if DefaultWindow > DefaultMaxPending {
		t.Fatalf("DefaultWindow %d over the subscriber's DefaultMaxPending %d", DefaultWindow, DefaultMaxPending)
	}
	b := mqtttest.Start(t, nil)
	keys := newArchiveKeys(t)
	arch := newFakeArchive(t, keys)
	arch.setReply(func(Delivery) []byte { return nil }) // silent archive
	startSubscriber(t, b.URL, nil, arch.handle, "archive-1")
	ob := newMemOutbox()
	for i := range DefaultWindow + 8 {
		ob.put(entryID(i), bundleBytes(fmt.Sprint("defwin", i), 2000))
	}
	o := pubOptions(b.URL, "dev1", ob, keys)
	o.ResendAfter = time.Hour // only the window limits what is sent
	p := startPublisher(t, o)
	waitFor(t, "a window of bundles at the archive", 10*time.Second, func() bool { return arch.distinct() >= DefaultWindow })
	time.Sleep(300 * time.Millisecond)
	st := p.Stats()
	if d := arch.distinct(); d != DefaultWindow || st.InFlight != DefaultWindow || st.BundlesSent != DefaultWindow || st.PeakInFlight != DefaultWindow {
		t.Fatalf("silent archive: %d distinct bundles at the archive, stats %+v; want %d in flight", d, st, DefaultWindow)
	}
}

// TestRateLimit: with BytesPerSecond the publisher cannot send faster
// than the bucket allows (a lower bound on elapsed time, which no
// scheduling delay can break), and it still delivers everything.
func TestRateLimit(t *testing.T) {
	b := mqtttest.Start(t, nil)
	keys := newArchiveKeys(t)
	arch := newFakeArchive(t, keys)
	startSubscriber(t, b.URL, nil, arch.handle, "archive-1")
	ob := newMemOutbox()
	const n, size = 6, 40_000
	for i := range n {
		ob.put(entryID(i), bundleBytes(fmt.Sprint("rate", i), size))
	}
	o := pubOptions(b.URL, "dev1", ob, keys)
	o.BytesPerSecond = 100_000
	o.MaxMessage = 16 << 10
	start := time.Now()
	p := startPublisher(t, o)
	waitFor(t, "outbox drained", 20*time.Second, func() bool { return ob.len() == 0 })
	el := time.Since(start)
	sent := p.Stats().BytesSent
	// burst is max(MaxMessage, BytesPerSecond) = 100 000 bytes.
	minimum := time.Duration(float64(sent-100_000) / 100_000 * float64(time.Second))
	if el < minimum {
		t.Errorf("%d bytes in %v: faster than 100 kB/s (minimum %v)", sent, el, minimum)
	}
	t.Logf("%d bytes in %v at 100 kB/s (minimum %v)", sent, el.Round(time.Millisecond), minimum.Round(time.Millisecond))
}

// TestFrameBuffersReused: the publisher writes later frames into the
// buffers of frames the broker acknowledged; every frame still arrives
// intact (none refused by the assembler, every bundle once, each with its
// own bytes).
func TestFrameBuffersReused(t *testing.T) {
	b := mqtttest.Start(t, nil)
	keys := newArchiveKeys(t)
	arch := newFakeArchive(t, keys)
	s := startSubscriber(t, b.URL, nil, arch.handle, "archive-1")
	ob := newMemOutbox()
	const n, size = 24, 100_000 // 7 frames each
	var digests [][32]byte
	for i := range n {
		data := bundleBytes(fmt.Sprint("reuse", i), size)
		digests = append(digests, sha256.Sum256(data))
		ob.put(entryID(i), data)
	}
	o := pubOptions(b.URL, "dev1", ob, keys)
	o.MaxMessage = 16 << 10
	p := startPublisher(t, o)
	waitFor(t, "outbox drained", 30*time.Second, func() bool { return ob.len() == 0 })
	if st := s.Stats(); st.BadFrames != 0 || st.Assembler.Refused != 0 {
		t.Fatalf("frames refused: %+v", st)
	}
	for i, d := range digests {
		if c := arch.count(d); c < 1 {
			t.Fatalf("bundle %d never arrived", i)
		}
	}
	if st := p.Stats(); st.FramesSent < n*7 || st.Resent != 0 {
		t.Fatalf("publisher: %+v", st)
	}
}

// digestOutbox is a memOutbox that keeps each entry's digest (an
// OutboxDigester); wrong, when set, gives a wrong one.
type digestOutbox struct {
	*memOutbox
	wrong bool
	mu    gosync.Mutex
	gets  int
}

func (o *digestOutbox) OutboxIDs(ctx context.Context, fn func(id string) error) error {
	return o.Outbox(ctx, func(id string, _ []byte) error { return fn(id) })
}

func (o *digestOutbox) OutboxGet(ctx context.Context, id string) ([]byte, bool, error) {
	panic("OutboxGet called on an OutboxDigester")
}

func (o *digestOutbox) OutboxGetDigest(ctx context.Context, id string, buf *[]byte) ([]byte, [32]byte, bool, error) {
	o.mu.Lock()
	o.gets++
	o.mu.Unlock()
	o.memOutbox.mu.Lock()
	data, ok := o.entries[id]
	if buf != nil { // as the journal does: the caller's buffer, reused for each bundle
		*buf = append((*buf)[:0], data...)
		data = *buf
	}
	o.memOutbox.mu.Unlock()
	d := sha256.Sum256(data)
	if o.wrong {
		d = sha256.Sum256(append([]byte("not "), data...))
	}
	return data, d, ok, nil
}

// TestOutboxDigester: with an outbox that keeps the digests, the
// publisher sends each bundle under the digest the outbox gives (a wrong
// one gets the frames refused and nothing delivered).
func TestOutboxDigester(t *testing.T) {
	for _, wrong := range []bool{false, true} {
		b := mqtttest.Start(t, nil)
		keys := newArchiveKeys(t)
		arch := newFakeArchive(t, keys)
		s := startSubscriber(t, b.URL, nil, arch.handle, "archive-1")
		ob := &digestOutbox{memOutbox: newMemOutbox(), wrong: wrong}
		for i := range 3 {
			ob.put(entryID(i), bundleBytes(fmt.Sprint("digester", i), 40_000))
		}
		o := pubOptions(b.URL, "dev1", ob, keys)
		o.MaxMessage = 16 << 10
		p := startPublisher(t, o)
		if !wrong {
			waitFor(t, "outbox drained", 20*time.Second, func() bool { return ob.len() == 0 })
			ob.mu.Lock()
			gets := ob.gets
			ob.mu.Unlock()
			if gets < 3 || s.Stats().BadFrames != 0 {
				t.Fatalf("%d gets, subscriber %+v", gets, s.Stats())
			}
			continue
		}
		waitFor(t, "frames refused", 20*time.Second, func() bool { return s.Stats().Assembler.Refused >= 3 })
		if st := p.Stats(); st.Delivered != 0 || arch.distinct() != 0 {
			t.Fatalf("delivered with wrong digests: publisher %+v, archive %d", st, arch.distinct())
		}
	}
}

// TestAlert publishes on the alerts topic and a second client sees it.
func TestAlert(t *testing.T) {
	b := mqtttest.Start(t, nil)
	keys := newArchiveKeys(t)
	arch := newFakeArchive(t, keys)
	s := startSubscriber(t, b.URL, nil, arch.handle, "archive-1")
	got := make(chan []byte, 1)
	l, err := dial(context.Background(), dialConfig{broker: b.URL, clientID: "alert-watch", connectTimeout: 5 * time.Second,
		onMessage: func(_ mqtt.Client, m mqtt.Message) { got <- m.Payload() }})
	if err != nil {
		t.Fatal(err)
	}
	defer l.c.Disconnect(100)
	if err := waitToken(context.Background(), l.c.Subscribe(AlertsTopic, 1, nil), l, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := s.Alert(context.Background(), []byte(`{"alert":"fork"}`)); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-got:
		if string(m) != `{"alert":"fork"}` {
			t.Errorf("alert %q", m)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("alert not received")
	}
}
