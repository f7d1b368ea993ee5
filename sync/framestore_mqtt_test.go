package sync

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgeseal/edgeseal/sync/mqtttest"
)

// flakyFrames fails its first fail Adds as an unreachable store would.
type flakyFrames struct {
	FrameStore
	fail  atomic.Int64
	calls atomic.Int64
}

func (f *flakyFrames) Add(ctx context.Context, source string, frame []byte) (*Complete, error) {
	f.calls.Add(1)
	if f.fail.Add(-1) >= 0 {
		return nil, errors.New("store unreachable")
	}
	return f.FrameStore.Add(ctx, source, frame)
}

// TestFrameStoreRetried: a Subscriber with SubscriberOptions.Frames
// tries a frame again when the store failed to keep it (not refused it),
// before the frame is acknowledged: the bundle arrives without the
// agent sending it again.
func TestFrameStoreRetried(t *testing.T) {
	b := mqtttest.Start(t, nil)
	keys := newArchiveKeys(t)
	arch := newFakeArchive(t, keys)
	fs := &flakyFrames{FrameStore: MemFrames{NewAssembler(AssemblerLimits{})}}
	fs.fail.Store(frameAttempts - 1)
	s, err := NewSubscriber(SubscriberOptions{Broker: b.URL, ClientID: "archive-1", Handler: arch.handle, Logger: testLogger(t),
		Frames: fs, BackoffMin: 50 * time.Millisecond, BackoffMax: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	run(t, "subscriber", s.Start)
	waitFor(t, "subscriber connected", 10*time.Second, func() bool { return s.Stats().Connected })
	ob := newMemOutbox()
	ob.put(entryID(0), bundleBytes("flaky", 3000))
	o := pubOptions(b.URL, "dev1", ob, keys)
	o.ResendAfter = time.Hour // delivered by the subscriber's tries, not a resend
	p := startPublisher(t, o)
	waitFor(t, "bundle delivered", 20*time.Second, func() bool { return ob.len() == 0 })
	if st := p.Stats(); st.BundlesSent != 1 {
		t.Fatalf("publisher stats %+v, want the bundle sent once", st)
	}
	if n := fs.calls.Load(); n != frameAttempts {
		t.Fatalf("%d Adds, want %d", n, frameAttempts)
	}
	if st := s.Stats(); st.BadFrames != 0 || st.Assembler.Completed != 0 {
		t.Fatalf("subscriber stats %+v: no bad frame, no in-memory Assembler of its own", st)
	}
}

// lostLines counts the log records saying a frame was not kept.
type lostLines struct {
	slog.Handler
	n *atomic.Int64
}

func (h lostLines) Handle(ctx context.Context, r slog.Record) error {
	if r.Level == slog.LevelError && strings.Contains(r.Message, "frame not kept") {
		h.n.Add(1)
	}
	return h.Handler.Handle(ctx, r)
}

func (h lostLines) WithAttrs(as []slog.Attr) slog.Handler {
	return lostLines{h.Handler.WithAttrs(as), h.n}
}

func (h lostLines) WithGroup(g string) slog.Handler { return lostLines{h.Handler.WithGroup(g), h.n} }

// TestFrameStoreGivenUp: a frame the store fails to keep at every try
// is acknowledged, counted in FramesLost and logged once as an error;
// the bundle arrives when the agent sends it again.
func TestFrameStoreGivenUp(t *testing.T) {
	b := mqtttest.Start(t, nil)
	keys := newArchiveKeys(t)
	arch := newFakeArchive(t, keys)
	fs := &flakyFrames{FrameStore: MemFrames{NewAssembler(AssemblerLimits{})}}
	fs.fail.Store(frameAttempts)
	var lost atomic.Int64
	s, err := NewSubscriber(SubscriberOptions{Broker: b.URL, ClientID: "archive-1", Handler: arch.handle,
		Logger: slog.New(lostLines{slog.NewTextHandler(io.Discard, nil), &lost}), // info and above, whether verbose or not
		Frames: fs, BackoffMin: 50 * time.Millisecond, BackoffMax: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	run(t, "subscriber", s.Start)
	waitFor(t, "subscriber connected", 10*time.Second, func() bool { return s.Stats().Connected })
	ob := newMemOutbox()
	ob.put(entryID(0), bundleBytes("lost", 3000))
	o := pubOptions(b.URL, "dev1", ob, keys)
	o.ResendAfter = 3 * time.Second // past the subscriber's tries
	p := startPublisher(t, o)
	waitFor(t, "bundle delivered", 30*time.Second, func() bool { return ob.len() == 0 })
	if st := p.Stats(); st.BundlesSent < 2 {
		t.Fatalf("publisher stats %+v, want the bundle sent again", st)
	}
	if st := s.Stats(); st.FramesLost != 1 {
		t.Fatalf("subscriber stats %+v, want one frame lost", st)
	}
	if n := lost.Load(); n != 1 {
		t.Fatalf("%d error lines for one frame not kept, want 1", n)
	}
}
