package sync

import (
	"context"
	"crypto/sha256"
	"fmt"
	"log/slog"
	"os"
	"slices"
	gosync "sync"
	"testing"
	"time"

	"github.com/edgeseal/edgeseal/bundle/bundletest"
	"github.com/edgeseal/edgeseal/bundle/wire"
)

// memOutbox is an in-memory Outbox.
type memOutbox struct {
	mu      gosync.Mutex
	entries map[string][]byte
	deletes int
}

func newMemOutbox() *memOutbox { return &memOutbox{entries: make(map[string][]byte)} }

func (o *memOutbox) put(id string, data []byte) {
	o.mu.Lock()
	o.entries[id] = data
	o.mu.Unlock()
}

func (o *memOutbox) Outbox(ctx context.Context, fn func(id string, data []byte) error) error {
	o.mu.Lock()
	ids := make([]string, 0, len(o.entries))
	for id := range o.entries {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	data := make([][]byte, len(ids))
	for i, id := range ids {
		data[i] = append([]byte(nil), o.entries[id]...)
	}
	o.mu.Unlock()
	for i, id := range ids {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := fn(id, data[i]); err != nil {
			return err
		}
	}
	return nil
}

func (o *memOutbox) DeleteOutbox(ctx context.Context, id string) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	delete(o.entries, id)
	o.deletes++
	return nil
}

func (o *memOutbox) len() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.entries)
}

func (o *memOutbox) has(id string) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	_, ok := o.entries[id]
	return ok
}

// archiveKeys signs receipts and rejections like the archive.
type archiveKeys struct{ *bundletest.ArchiveKey }

func newArchiveKeys(t testing.TB) *archiveKeys {
	t.Helper()
	k, err := bundletest.NewArchiveKey()
	if err != nil {
		t.Fatal(err)
	}
	return &archiveKeys{k}
}

// receipt is a signed receipt, nil (and t failed) on error: it may run
// outside the test goroutine.
func (k *archiveKeys) receipt(t testing.TB, digest [32]byte, device string) []byte {
	t.Helper()
	raw, err := k.Receipt(digest, device)
	if err != nil {
		t.Error(err)
		return nil
	}
	return raw
}

func (k *archiveKeys) rejection(t testing.TB, digest [32]byte, device, reason string, checks ...string) []byte {
	t.Helper()
	if len(checks) == 0 {
		checks = []string{"seal.signature"}
	}
	raw, err := SignRejection(&Rejection{BundleDigest: wire.FormatHash(digest), Device: device, Reason: reason,
		Checks: checks, Time: "2026-11-26T02:00:00.000000Z"}, k.KeyID, k.Priv)
	if err != nil {
		t.Error(err)
	}
	return raw
}

// fakeArchive is a Handler recording deliveries; reply decides the answer.
type fakeArchive struct {
	t      testing.TB
	keys   *archiveKeys
	mu     gosync.Mutex
	seen   map[[32]byte]int        // digest -> deliveries
	order  map[string][]string     // device -> outbox ids in first-delivery order
	reply  func(d Delivery) []byte // nil: receipt
	delay  time.Duration
	strict bool // accept only the next id per device (entryID order)
	gaps   int
	// rejectGaps answers a gap with a signed rejection instead of an error.
	rejectGaps bool
}

func newFakeArchive(t testing.TB, keys *archiveKeys) *fakeArchive {
	return &fakeArchive{t: t, keys: keys, seen: make(map[[32]byte]int), order: make(map[string][]string)}
}

func (a *fakeArchive) handle(ctx context.Context, d Delivery) ([]byte, error) {
	if sha256.Sum256(d.Bundle) != d.Digest {
		a.t.Errorf("delivery with wrong digest")
	}
	if a.delay > 0 {
		time.Sleep(a.delay)
	}
	a.mu.Lock()
	dev := d.Site + "/" + d.Device
	if a.strict {
		// Like the real archive: a bundle must follow the last accepted
		// one; a repeat gets its receipt again; a gap is an error (no
		// reply, the agent resends in order), never a signed rejection.
		next := len(a.order[dev])
		switch {
		case d.ID > entryID(next):
			a.gaps++
			a.mu.Unlock()
			if a.rejectGaps { // what archive/ does today: a signed rejection
				return a.keys.rejection(a.t, d.Digest, dev, "gap", GapCheck), nil
			}
			return nil, fmt.Errorf("gap: %s before %s", d.ID, entryID(next))
		case d.ID < entryID(next):
			a.seen[d.Digest]++
			a.mu.Unlock()
			return a.keys.receipt(a.t, d.Digest, dev), nil
		}
	}
	if a.seen[d.Digest] == 0 {
		a.order[dev] = append(a.order[dev], d.ID)
	}
	a.seen[d.Digest]++
	if os.Getenv("SYNC_TEST_DEBUG") != "" {
		a.t.Logf("archive: %s %s (%d)", dev, d.ID, a.seen[d.Digest])
	}
	reply := a.reply
	a.mu.Unlock()
	if reply != nil {
		return reply(d), nil
	}
	return a.keys.receipt(a.t, d.Digest, dev), nil
}

func (a *fakeArchive) setReply(fn func(d Delivery) []byte) {
	a.mu.Lock()
	a.reply = fn
	a.mu.Unlock()
}

func (a *fakeArchive) distinct() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.seen)
}

func (a *fakeArchive) count(d [32]byte) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.seen[d]
}

func (a *fakeArchive) ids(device string) []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.order[device])
}

func testLogger(t testing.TB) *slog.Logger {
	if testing.Verbose() {
		level := slog.LevelInfo
		if os.Getenv("SYNC_TEST_DEBUG") != "" {
			level = slog.LevelDebug
		}
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	}
	return slog.New(slog.DiscardHandler)
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// bundleBytes makes deterministic pseudo-random bundle content.
func bundleBytes(seed string, n int) []byte {
	out := make([]byte, 0, n+32)
	h := sha256.Sum256([]byte(seed))
	for len(out) < n {
		out = append(out, h[:]...)
		h = sha256.Sum256(h[:])
	}
	return out[:n]
}

func entryID(i int) string { return fmt.Sprintf("%012d", i) }
