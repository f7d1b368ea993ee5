package sync

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"fmt"
	"slices"
	gosync "sync"
	"testing"
	"time"

	"github.com/edgeseal/edgeseal/store"
	"github.com/edgeseal/edgeseal/sync/mqtttest"
)

// run starts fn in a goroutine until the test ends.
func run(t *testing.T, name string, fn func(ctx context.Context) error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- fn(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil && err != context.Canceled {
				t.Errorf("%s: %v", name, err)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("%s did not stop", name)
		}
	})
}

func startSubscriber(t *testing.T, url string, tc *tls.Config, h Handler, id string) *Subscriber {
	t.Helper()
	s, err := NewSubscriber(SubscriberOptions{Broker: url, ClientID: id, TLS: tc, Handler: h, Logger: testLogger(t),
		BackoffMin: 50 * time.Millisecond, BackoffMax: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	run(t, "subscriber", s.Start)
	waitFor(t, "subscriber connected", 10*time.Second, func() bool { return s.Stats().Connected })
	return s
}

func pubOptions(url, device string, ob Outbox, keys *archiveKeys) PublisherOptions {
	return PublisherOptions{Broker: url, Site: "site1", Device: device, Outbox: ob, ArchiveKey: keys.Pub,
		Tick: 50 * time.Millisecond, ResendAfter: 3 * time.Second, BackoffMin: 50 * time.Millisecond, BackoffMax: 500 * time.Millisecond}
}

func startPublisher(t *testing.T, o PublisherOptions) *Publisher {
	t.Helper()
	if o.Logger == nil {
		o.Logger = testLogger(t)
	}
	p, err := NewPublisher(o)
	if err != nil {
		t.Fatal(err)
	}
	run(t, "publisher "+o.Device, p.Start)
	return p
}

// TestRoundTrip: bundles from an in-memory outbox and from a real journal
// go through mosquitto to the subscriber, receipts come back, OnReceipt
// runs while the entry still exists, and the entries are deleted.
func TestRoundTrip(t *testing.T) {
	b := mqtttest.Start(t, nil)
	keys := newArchiveKeys(t)
	arch := newFakeArchive(t, keys)
	startSubscriber(t, b.URL, nil, arch.handle, "archive-1")

	mem := newMemOutbox()
	j, err := store.Open(context.Background(), store.Options{Dir: t.TempDir(), MinFreeBytes: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { j.Close() })
	const n = 6
	var want [][32]byte
	for i := range n {
		m, s := bundleBytes(fmt.Sprint("mem", i), 1000+i*500), bundleBytes(fmt.Sprint("journal", i), 2000+i*300)
		mem.put(entryID(i), m)
		if err := j.PutOutbox(context.Background(), entryID(i), s); err != nil {
			t.Fatal(err)
		}
		want = append(want, sha256.Sum256(m), sha256.Sum256(s))
	}
	var mu gosync.Mutex
	receipts := map[string]int{}
	onReceipt := func(dev string, ob interface{ has(string) bool }) func(context.Context, string, []byte) error {
		return func(ctx context.Context, id string, r []byte) error {
			if !ob.has(id) {
				t.Errorf("%s: OnReceipt(%s) after the entry was deleted", dev, id)
			}
			if _, err := verifyReceipt(r, "", keys.Pub); err != nil {
				t.Errorf("OnReceipt got a bad receipt: %v", err)
			}
			mu.Lock()
			receipts[dev+"/"+id]++
			mu.Unlock()
			return nil
		}
	}
	om := pubOptions(b.URL, "mem", mem, keys)
	om.OnReceipt = onReceipt("mem", mem)
	pm := startPublisher(t, om)
	oj := pubOptions(b.URL, "journal", j, keys)
	oj.OnReceipt = onReceipt("journal", journalHas{j})
	pj := startPublisher(t, oj)
	pj.Wake()

	// A publisher counts a delivery just after it deleted the entry.
	waitFor(t, "both outboxes empty and every delivery counted", 20*time.Second, func() bool {
		return mem.len() == 0 && journalLen(t, j) == 0 && pm.Stats().Delivered == n && pj.Stats().Delivered == n
	})
	for _, d := range want {
		if arch.count(d) < 1 {
			t.Errorf("bundle %x never reached the archive", d[:6])
		}
	}
	mu.Lock()
	if len(receipts) != 2*n {
		t.Errorf("OnReceipt for %d entries, want %d", len(receipts), 2*n)
	}
	mu.Unlock()
	for _, p := range []*Publisher{pm, pj} {
		st := p.Stats()
		if st.Delivered != n || st.BadReplies != 0 || !st.Connected {
			t.Errorf("stats %+v", st)
		}
	}
	if got := arch.ids("site1/mem"); !slices.IsSorted(got) || len(got) != n {
		t.Errorf("archive order for mem: %v", got)
	}
}

type journalHas struct{ j *store.Journal }

func (h journalHas) has(id string) bool {
	found := false
	_ = h.j.Outbox(context.Background(), func(got string, _ []byte) error {
		found = found || got == id
		return nil
	})
	return found
}

func journalLen(t *testing.T, j *store.Journal) int {
	n := 0
	if err := j.Outbox(context.Background(), func(string, []byte) error { n++; return nil }); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestChunked sends bundles of several MiB as many small frames.
func TestChunked(t *testing.T) {
	b := mqtttest.Start(t, nil)
	keys := newArchiveKeys(t)
	arch := newFakeArchive(t, keys)
	sub := startSubscriber(t, b.URL, nil, arch.handle, "archive-1")
	ob := newMemOutbox()
	sizes := []int{3<<20 + 17, 100, 2 << 20}
	for i, n := range sizes {
		ob.put(entryID(i), bundleBytes(fmt.Sprint("big", i), n))
	}
	o := pubOptions(b.URL, "dev1", ob, keys)
	o.MaxMessage = 32 << 10
	p := startPublisher(t, o)
	waitFor(t, "outbox drained", 40*time.Second, func() bool { return ob.len() == 0 })
	st := p.Stats()
	minFrames := uint64((3<<20+17)/(32<<10) + 1 + (2<<20)/(32<<10))
	if st.FramesSent < minFrames {
		t.Errorf("frames sent %d, want at least %d", st.FramesSent, minFrames)
	}
	if got := arch.ids("site1/dev1"); !slices.Equal(got, []string{entryID(0), entryID(1), entryID(2)}) {
		t.Errorf("order %v", got)
	}
	// A bundle sent again (after a reconnect on a loaded machine) may
	// leave the frames of its second copy in the assembler, completed or
	// not, until its TTL; without a resend nothing may be left.
	as := sub.Stats().Assembler
	if as.Completed < 3 || (p.Stats().Resent == 0 && (as.Partials != 0 || as.Bytes != 0)) {
		t.Errorf("assembler %+v, publisher %+v", as, p.Stats())
	}
}

// TestBadReceipts: a receipt signed by another key, one naming another
// digest, and one for another device delete nothing; good ones then do.
func TestBadReceipts(t *testing.T) {
	b := mqtttest.Start(t, nil)
	keys := newArchiveKeys(t)
	other := newArchiveKeys(t)
	arch := newFakeArchive(t, keys)
	var mu gosync.Mutex
	kinds := []string{}
	arch.setReply(func(d Delivery) []byte {
		mu.Lock()
		defer mu.Unlock()
		dev := d.Site + "/" + d.Device
		switch len(kinds) % 3 {
		case 0:
			kinds = append(kinds, "wrong key")
			return other.receipt(t, d.Digest, dev)
		case 1:
			kinds = append(kinds, "wrong digest")
			return keys.receipt(t, sha256.Sum256([]byte("another bundle")), dev)
		default:
			kinds = append(kinds, "wrong device")
			return keys.receipt(t, d.Digest, "site1/other")
		}
	})
	startSubscriber(t, b.URL, nil, arch.handle, "archive-1")
	ob := newMemOutbox()
	for i := range 3 {
		ob.put(entryID(i), bundleBytes(fmt.Sprint("bad", i), 5000))
	}
	o := pubOptions(b.URL, "dev1", ob, keys)
	o.ResendAfter = 500 * time.Millisecond
	p := startPublisher(t, o)
	waitFor(t, "6 bad replies", 20*time.Second, func() bool { return p.Stats().BadReplies >= 6 })
	if ob.len() != 3 || ob.deletes != 0 {
		t.Fatalf("bad receipts deleted entries: %d left, %d deletes", ob.len(), ob.deletes)
	}
	if st := p.Stats(); st.Delivered != 0 || st.Resent == 0 {
		t.Errorf("stats %+v", st)
	}
	arch.setReply(nil)
	waitFor(t, "outbox drained with good receipts", 20*time.Second, func() bool { return ob.len() == 0 })
}

// TestRejection: a signed rejection keeps the entry, calls OnRejection,
// and the entry is not sent again; the others are delivered.
func TestRejection(t *testing.T) {
	b := mqtttest.Start(t, nil)
	keys := newArchiveKeys(t)
	arch := newFakeArchive(t, keys)
	arch.setReply(func(d Delivery) []byte {
		if d.ID == entryID(1) {
			return keys.rejection(t, d.Digest, d.Site+"/"+d.Device, "seal signature does not verify")
		}
		return keys.receipt(t, d.Digest, d.Site+"/"+d.Device)
	})
	startSubscriber(t, b.URL, nil, arch.handle, "archive-1")
	ob := newMemOutbox()
	for i := range 3 {
		ob.put(entryID(i), bundleBytes(fmt.Sprint("rej", i), 3000))
	}
	rejected := make(chan string, 4)
	o := pubOptions(b.URL, "dev1", ob, keys)
	o.ResendAfter = 300 * time.Millisecond
	o.OnRejection = func(ctx context.Context, id string, r *Rejection, raw []byte) {
		if r.Reason == "" || len(raw) == 0 {
			t.Errorf("rejection %+v", r)
		}
		rejected <- id
	}
	p := startPublisher(t, o)
	waitFor(t, "two delivered", 20*time.Second, func() bool { return p.Stats().Delivered == 2 })
	if id := <-rejected; id != entryID(1) {
		t.Errorf("rejected %s", id)
	}
	time.Sleep(time.Second) // several ticks and resend periods
	st := p.Stats()
	if !ob.has(entryID(1)) || ob.len() != 1 || st.Rejected != 1 || st.Held != 1 || st.InFlight != 0 {
		t.Errorf("after rejection: outbox %d, stats %+v", ob.len(), st)
	}
	if n := arch.count(sha256.Sum256(bundleBytes("rej1", 3000))); n != 1 {
		t.Errorf("rejected bundle sent %d times, want 1", n)
	}
}
