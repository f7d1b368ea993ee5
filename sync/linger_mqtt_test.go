package sync

import (
	"context"
	"errors"
	"fmt"
	"slices"
	gosync "sync"
	"testing"
	"time"

	"github.com/edgeseal/edgeseal/sync/mqtttest"
)

// receiptLog records the OnReceipts calls of a test publisher.
type receiptLog struct {
	mu        gosync.Mutex
	journaled map[string]int // id -> calls that journaled it
	refused   [][]string     // the ids of each refused call
}

func (l *receiptLog) count(id string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.journaled[id]
}

// TestReceiptRefusedAlone: through a real Mosquitto, with replies
// lingering into batches, the receipt callback refuses every batch that
// holds one particular receipt (as the agent refuses a whole batch for
// one receipt its archive witness does not accept). The receipts that
// came with it are journaled all the same and every other entry is
// delivered; only the refused one stays in the outbox.
func TestReceiptRefusedAlone(t *testing.T) {
	b := mqtttest.Start(t, nil)
	keys := newArchiveKeys(t)
	arch := newFakeArchive(t, keys)
	arch.delay = 5 * time.Millisecond // replies a few ms apart: the linger batches them
	startSubscriber(t, b.URL, nil, arch.handle, "archive-1")

	const n = 16
	ob := newMemOutbox()
	for i := range n {
		ob.put(entryID(i), bundleBytes(fmt.Sprint("refused-alone", i), 3000+i))
	}
	bad := entryID(0)
	calls := &receiptLog{journaled: map[string]int{}}
	o := pubOptions(b.URL, "dev1", ob, keys)
	o.Window = 8
	o.ResendAfter = time.Second
	o.OnReceipts = func(_ context.Context, ids []string, _ [][]byte) error {
		calls.mu.Lock()
		defer calls.mu.Unlock()
		if slices.Contains(ids, bad) {
			calls.refused = append(calls.refused, slices.Clone(ids))
			return errors.New("witness: receipt refused")
		}
		for _, id := range ids {
			calls.journaled[id]++
		}
		return nil
	}
	p := startPublisher(t, o)
	waitFor(t, "every entry but the refused one delivered", 30*time.Second, func() bool {
		return ob.len() == 1 && ob.has(bad)
	})
	for i := 1; i < n; i++ {
		if c := calls.count(entryID(i)); c != 1 {
			t.Errorf("entry %d journaled %d times, want once", i, c)
		}
	}
	calls.mu.Lock()
	together := 0
	for _, ids := range calls.refused {
		if len(ids) > 1 {
			together++
		}
	}
	refused := len(calls.refused)
	calls.mu.Unlock()
	if together == 0 {
		t.Errorf("the refused receipt never came with others (%d calls refused): the test did not batch", refused)
	}
	if calls.count(bad) != 0 || !ob.has(bad) {
		t.Errorf("refused entry journaled %d times, in the outbox %v", calls.count(bad), ob.has(bad))
	}
	if st := p.Stats(); st.Delivered != n-1 {
		t.Errorf("delivered %d, want %d: %+v", st.Delivered, n-1, st)
	}
}

// TestReplyLingerLinkLost: the broker goes away while replies are
// queued and one batch of receipts is being journaled (their
// acknowledgements are lost with the connection), then comes back:
// every entry is delivered, each receipt journaled once (the broker's
// second delivery of a reply handled already is a duplicate).
func TestReplyLingerLinkLost(t *testing.T) {
	b := mqtttest.Start(t, nil)
	keys := newArchiveKeys(t)
	arch := newFakeArchive(t, keys)
	arch.delay = 2 * time.Millisecond
	startSubscriber(t, b.URL, nil, arch.handle, "archive-1")

	const n = 24
	ob := newMemOutbox()
	for i := range n {
		ob.put(entryID(i), bundleBytes(fmt.Sprint("link-lost", i), 3000+i))
	}
	calls := &receiptLog{journaled: map[string]int{}}
	entered := make(chan struct{})
	release := make(chan struct{})
	var first gosync.Once
	o := pubOptions(b.URL, "dev1", ob, keys)
	o.Window = 8
	o.ResendAfter = 2 * time.Second
	o.OnReceipts = func(ctx context.Context, ids []string, _ [][]byte) error {
		first.Do(func() {
			close(entered)
			select { // the link goes while this batch is journaled
			case <-release:
			case <-ctx.Done():
			}
		})
		calls.mu.Lock()
		defer calls.mu.Unlock()
		for _, id := range ids {
			calls.journaled[id]++
		}
		return nil
	}
	p := startPublisher(t, o)
	select {
	case <-entered:
	case <-time.After(20 * time.Second):
		t.Fatal("no receipt reached the publisher")
	}
	// More replies queue behind the batch being journaled.
	waitFor(t, "replies queued behind the batch", 10*time.Second, func() bool {
		p.rmu.Lock()
		defer p.rmu.Unlock()
		return len(p.rqueue) > 0
	})
	b.Stop()
	waitFor(t, "link lost", 10*time.Second, func() bool { return !p.Stats().Connected })
	close(release)
	waitFor(t, "the queued replies handled while the broker is down", 10*time.Second, func() bool {
		p.rmu.Lock()
		defer p.rmu.Unlock()
		return len(p.rqueue) == 0
	})
	b.Restart()
	waitFor(t, "all delivered after the broker came back", 40*time.Second, func() bool {
		return ob.len() == 0 && p.Stats().Delivered == n
	})
	for i := range n {
		if c := calls.count(entryID(i)); c != 1 {
			t.Errorf("entry %d journaled %d times, want once", i, c)
		}
	}
}
