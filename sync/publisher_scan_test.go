package sync

import (
	"context"
	"crypto/sha256"
	"slices"
	gosync "sync"
	"testing"
)

// listOutbox is a memOutbox that lists ids (an OutboxLister) and counts
// its listings.
type listOutbox struct {
	*memOutbox
	mu       gosync.Mutex
	listings int
}

func (o *listOutbox) OutboxIDs(ctx context.Context, fn func(id string) error) error {
	o.mu.Lock()
	o.listings++
	o.mu.Unlock()
	return o.Outbox(ctx, func(id string, _ []byte) error { return fn(id) })
}

func (o *listOutbox) OutboxGet(_ context.Context, id string) ([]byte, bool, error) {
	o.memOutbox.mu.Lock()
	defer o.memOutbox.mu.Unlock()
	data, ok := o.entries[id]
	return data, ok, nil
}

func (o *listOutbox) count() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.listings
}

// TestScanListsOnce: the publisher lists the outbox once and takes the
// next entries to send from that listing at each pump (a receipt
// freeing the window lists nothing again); a Wake (a new bundle) lists it
// again, a delivered entry leaves the listing, and so does one found gone
// when read.
func TestScanListsOnce(t *testing.T) {
	keys := newArchiveKeys(t)
	ob := &listOutbox{memOutbox: newMemOutbox()}
	data := map[string][]byte{}
	for _, id := range []string{"a", "b", "c", "d", "e"} {
		data[id] = bundleBytes("scan-"+id, 100)
		ob.put(id, data[id])
	}
	o := pubOptions("tcp://127.0.0.1:1", "dev1", ob, keys)
	o.Window = 2
	p, err := NewPublisher(o)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	scan := func() []string {
		t.Helper()
		es, err := p.scan(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, e := range es {
			ids = append(ids, e.id)
		}
		return ids
	}
	send := func(ids ...string) { // as sender.send marks them
		p.mu.Lock()
		for _, id := range ids {
			p.sendOrder++
			p.inflight[id] = &flight{digest: sha256.Sum256(data[id]), order: p.sendOrder}
		}
		p.mu.Unlock()
	}
	if got := scan(); !slices.Equal(got, []string{"a", "b"}) || ob.count() != 1 {
		t.Fatalf("first scan %q, %d listings", got, ob.count())
	}
	send("a", "b")
	if got := scan(); len(got) != 0 || ob.count() != 1 {
		t.Fatalf("window full: scan %q, %d listings", got, ob.count())
	}
	errs := p.handleReplies(ctx, [][]byte{keys.receipt(t, sha256.Sum256(data["a"]), "site1/dev1")})
	if errs[0] != nil || ob.has("a") {
		t.Fatalf("receipt of a: %v, a still there %v", errs[0], ob.has("a"))
	}
	if got := scan(); !slices.Equal(got, []string{"c"}) || ob.count() != 1 {
		t.Fatalf("after a's receipt: scan %q, %d listings (want c from the first listing)", got, ob.count())
	}
	if slices.Contains(p.listed, "a") {
		t.Errorf("delivered a still listed: %q", p.listed)
	}

	// A new bundle and its Wake: listed again.
	data["f"] = bundleBytes("scan-f", 100)
	ob.put("f", data["f"])
	p.mu.Lock()
	delete(p.inflight, "b") // window free for two
	p.mu.Unlock()
	p.Wake()
	if got := scan(); !slices.Equal(got, []string{"b", "c"}) || ob.count() != 2 || !slices.Contains(p.listed, "f") {
		t.Fatalf("after a Wake: scan %q, %d listings, listed %q", got, ob.count(), p.listed)
	}

	// An entry gone when read (delivered by another way) leaves the
	// listing without a new one.
	if err := ob.DeleteOutbox(ctx, "d"); err != nil {
		t.Fatal(err)
	}
	var buf []byte
	if _, ok, err := p.get(ctx, "d", &buf); ok || err != nil {
		t.Fatalf("get of a deleted entry: ok %v, %v", ok, err)
	}
	if slices.Contains(p.listed, "d") || ob.count() != 2 {
		t.Errorf("gone d: listed %q, %d listings", p.listed, ob.count())
	}
}
