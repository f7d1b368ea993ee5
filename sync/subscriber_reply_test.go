package sync

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"net"
	"net/url"
	gosync "sync"
	"testing"
	"time"

	"github.com/edgeseal/edgeseal/sync/mqtttest"
)

// ackHolder is a connection to the broker that holds back the PUBACKs
// the broker sends (the broker confirming the subscriber's replies) while
// holding is set, and lets them through on release: a broker slow to
// confirm, without touching the rest of the stream.
type ackHolder struct {
	net.Conn
	pr *io.PipeReader
	pw *io.PipeWriter

	mu      gosync.Mutex
	holding bool
	held    [][]byte
	count   int            // PUBACKs held so far
	to      *io.PipeWriter // the current connection's stream
}

func holdAcks(t *testing.T, brokerURL string) (*ackHolder, func(ctx context.Context) (net.Conn, error)) {
	t.Helper()
	u, err := url.Parse(brokerURL)
	if err != nil {
		t.Fatal(err)
	}
	h := &ackHolder{holding: true}
	return h, func(ctx context.Context) (net.Conn, error) {
		c, err := (&net.Dialer{}).DialContext(ctx, "tcp", u.Host)
		if err != nil {
			return nil, err
		}
		pr, pw := io.Pipe()
		conn := &ackHolder{Conn: c, pr: pr, pw: pw}
		h.mu.Lock()
		h.to, h.held = pw, nil // the PUBACKs held on an earlier connection are void
		h.mu.Unlock()
		go h.pump(c, pw)
		return conn, nil
	}
}

func (c *ackHolder) Read(b []byte) (int, error) { return c.pr.Read(b) }

func (c *ackHolder) Close() error {
	c.pr.Close()
	return c.Conn.Close()
}

// pump copies the broker's packets to w, holding PUBACKs back.
func (h *ackHolder) pump(r io.Reader, w *io.PipeWriter) {
	defer w.Close()
	for {
		pkt, err := readPacket(r)
		if err != nil {
			w.CloseWithError(err)
			return
		}
		h.mu.Lock()
		if pkt[0]>>4 == 4 && h.holding { // PUBACK
			h.held = append(h.held, pkt)
			h.count++
			h.mu.Unlock()
			continue
		}
		h.mu.Unlock()
		if _, err := w.Write(pkt); err != nil {
			return
		}
	}
}

// release stops holding and delivers the PUBACKs held.
func (h *ackHolder) release() {
	h.mu.Lock()
	h.holding = false
	held, to := h.held, h.to
	h.held = nil
	h.mu.Unlock()
	for _, pkt := range held {
		if _, err := to.Write(pkt); err != nil {
			return
		}
	}
}

func (h *ackHolder) heldCount() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.count
}

// readPacket reads one MQTT control packet (fixed header, remaining
// length, body).
func readPacket(r io.Reader) ([]byte, error) {
	pkt := make([]byte, 1, 5)
	if _, err := io.ReadFull(r, pkt); err != nil {
		return nil, err
	}
	n, mul := 0, 1
	for i := 0; ; i++ {
		var b [1]byte
		if _, err := io.ReadFull(r, b[:]); err != nil {
			return nil, err
		}
		pkt = append(pkt, b[0])
		n += int(b[0]&0x7f) * mul
		mul *= 128
		if b[0]&0x80 == 0 {
			break
		}
		if i == 3 {
			return nil, fmt.Errorf("remaining length too long")
		}
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil {
		return nil, err
	}
	return append(pkt, body...), nil
}

// TestReplyQueueBounded: while the broker does not confirm the archive's
// replies, at most DefaultMaxReplies wait for it; the replies past that
// are dropped and counted, and the subscriber keeps receiving.
func TestReplyQueueBounded(t *testing.T) {
	b := mqtttest.Start(t, nil)
	keys := newArchiveKeys(t)
	arch := newFakeArchive(t, keys)
	holder, dial := holdAcks(t, b.URL)
	s, err := NewSubscriber(SubscriberOptions{Broker: b.URL, ClientID: "archive-bound", Handler: arch.handle, Logger: testLogger(t), Dial: dial,
		BackoffMin: 50 * time.Millisecond, BackoffMax: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	run(t, "subscriber", s.Start)
	waitFor(t, "subscriber connected", 10*time.Second, func() bool { return s.Stats().Connected })

	dev := mustConnect(t, b.URL, "site1-flood", nil, nil)
	n := DefaultMaxReplies + 20
	for i := range n {
		data := bundleBytes(fmt.Sprintf("b%d", i), 200)
		fr := EncodeChunks(entryID(i), sha256.Sum256(data), data, 1024)[0]
		if tok := dev.c.Publish(BundlesTopic("site1", "flood"), 1, false, fr); !tok.WaitTimeout(20*time.Second) || tok.Error() != nil {
			t.Fatalf("publish %d: %v", i, tok.Error())
		}
	}
	waitFor(t, "every bundle handled", 60*time.Second, func() bool { return s.Stats().Handled == uint64(n) })
	st := s.Stats()
	if st.Replies > DefaultMaxReplies {
		t.Fatalf("%d replies published while the broker confirmed none (%d PUBACKs held), bound %d", st.Replies, holder.heldCount(), DefaultMaxReplies)
	}
	if st.Replies != DefaultMaxReplies || st.RepliesDropped != uint64(n-DefaultMaxReplies) {
		t.Fatalf("replies %d published, %d dropped; want %d and %d", st.Replies, st.RepliesDropped, DefaultMaxReplies, n-DefaultMaxReplies)
	}
	holder.release()
}

// TestReplyDropSafe: replies dropped because the broker was slow to
// confirm lose nothing the agent needs: the agent keeps the bundles whose
// answer did not come, sends them again, and gets their receipts from the
// archive answering the repeats; every outbox entry ends receipted. Both
// with a Handler and with an Admitter (the archive daemon's).
func TestReplyDropSafe(t *testing.T) {
	t.Run("handler", func(t *testing.T) { testReplyDropSafe(t, false) })
	t.Run("admit", func(t *testing.T) { testReplyDropSafe(t, true) })
}

func testReplyDropSafe(t *testing.T, admit bool) {
	b := mqtttest.Start(t, nil)
	keys := newArchiveKeys(t)
	arch := newFakeArchive(t, keys)
	holder, dial := holdAcks(t, b.URL)
	so := SubscriberOptions{Broker: b.URL, ClientID: "archive-drop", Handler: arch.handle, Logger: testLogger(t), Dial: dial,
		MaxReplies: 1, BackoffMin: 50 * time.Millisecond, BackoffMax: 500 * time.Millisecond}
	if admit {
		so.Handler, so.Admit = nil, func(_ context.Context, d Delivery) func(context.Context) ([]byte, error) {
			return func(ctx context.Context) ([]byte, error) { return arch.handle(ctx, d) }
		}
	}
	s, err := NewSubscriber(so)
	if err != nil {
		t.Fatal(err)
	}
	run(t, "subscriber", s.Start)
	waitFor(t, "subscriber connected", 10*time.Second, func() bool { return s.Stats().Connected })

	ob := newMemOutbox()
	const n = 4
	for i := range n {
		ob.put(entryID(i), bundleBytes(fmt.Sprintf("drop%d", i), 3000))
	}
	o := pubOptions(b.URL, "dev1", ob, keys)
	o.ResendAfter = 2 * time.Second
	startPublisher(t, o)
	waitFor(t, "replies dropped", 60*time.Second, func() bool { return s.Stats().RepliesDropped > 0 })
	if ob.len() == 0 {
		t.Fatal("every bundle receipted although replies were dropped")
	}
	holder.release() // the broker's confirmations come: the places free
	waitFor(t, "every bundle receipted", 5*time.Minute, func() bool { return ob.len() == 0 })
	var again int
	for i := range n {
		if arch.count(sha256.Sum256(bundleBytes(fmt.Sprintf("drop%d", i), 3000))) > 1 {
			again++
		}
	}
	if again == 0 {
		t.Fatal("no bundle was answered twice: no reply was dropped on the way")
	}
	t.Logf("dropped %d replies, %d bundles sent again", s.Stats().RepliesDropped, again)
}
