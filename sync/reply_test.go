package sync

import (
	"context"
	"crypto/sha256"
	"errors"
	"slices"
	"testing"
)

// batchOutbox is a memOutbox that deletes in batches and records them.
type batchOutbox struct {
	*memOutbox
	batches [][]string
}

func (o *batchOutbox) DeleteOutboxes(ctx context.Context, ids []string) error {
	o.batches = append(o.batches, slices.Clone(ids))
	for _, id := range ids {
		if err := o.DeleteOutbox(ctx, id); err != nil {
			return err
		}
	}
	return nil
}

// TestHandleRepliesBatch: receipts that arrive together are journaled with
// one OnReceipts call and deleted with one DeleteOutboxes call, in arrival
// order; a rejection between them splits the run, a repeated receipt is
// journaled once, and a failing OnReceipts deletes nothing.
func TestHandleRepliesBatch(t *testing.T) {
	keys := newArchiveKeys(t)
	data := map[string][]byte{}
	newOutbox := func() *batchOutbox {
		ob := &batchOutbox{memOutbox: newMemOutbox()}
		for _, id := range []string{"a", "b", "c", "d"} {
			data[id] = bundleBytes("batch-"+id, 100)
			ob.put(id, data[id])
		}
		return ob
	}
	receipt := func(id string) []byte { return keys.receipt(t, sha256.Sum256(data[id]), "site1/dev1") }
	ctx := context.Background()

	ob := newOutbox()
	var calls [][]string
	o := pubOptions("tcp://127.0.0.1:1", "dev1", ob, keys)
	o.OnReceipts = func(_ context.Context, ids []string, receipts [][]byte) error {
		if len(ids) != len(receipts) {
			t.Errorf("OnReceipts: %d ids, %d receipts", len(ids), len(receipts))
		}
		for i, id := range ids {
			if string(receipts[i]) != string(receipt(id)) {
				t.Errorf("OnReceipts: receipt %d is not %s's", i, id)
			}
		}
		calls = append(calls, slices.Clone(ids))
		return nil
	}
	p, err := NewPublisher(o)
	if err != nil {
		t.Fatal(err)
	}
	rejC := keys.rejection(t, sha256.Sum256(data["c"]), "site1/dev1", "bad seal")
	errs := p.handleReplies(ctx, [][]byte{receipt("a"), receipt("b"), receipt("a"), rejC, receipt("d"), []byte("junk")})
	for i, err := range errs[:5] {
		if err != nil {
			t.Errorf("reply %d: %v", i, err)
		}
	}
	if _, ok := errors.AsType[*ReplyError](errs[5]); !ok {
		t.Errorf("junk reply: %v", errs[5])
	}
	want := [][]string{{"a", "b"}, {"d"}}
	if !slices.EqualFunc(calls, want, slices.Equal) || !slices.EqualFunc(ob.batches, want, slices.Equal) {
		t.Fatalf("OnReceipts calls %q, DeleteOutboxes calls %q, want %q for both", calls, ob.batches, want)
	}
	if !ob.has("c") || ob.len() != 1 {
		t.Errorf("outbox after the replies: has c %v, %d entries", ob.has("c"), ob.len())
	}
	if st := p.Stats(); st.Delivered != 3 || st.Rejected != 1 || st.BadReplies != 1 {
		t.Errorf("stats %+v", st)
	}

	// A failing OnReceipts: every receipt of the run fails, nothing is
	// deleted, nothing counts as delivered.
	ob = newOutbox()
	o = pubOptions("tcp://127.0.0.1:1", "dev1", ob, keys)
	o.OnReceipts = func(context.Context, []string, [][]byte) error { return errors.New("journal full") }
	if p, err = NewPublisher(o); err != nil {
		t.Fatal(err)
	}
	errs = p.handleReplies(ctx, [][]byte{receipt("a"), receipt("b")})
	for i, err := range errs {
		if err == nil {
			t.Errorf("receipt %d with a failing OnReceipts: no error", i)
		}
	}
	if ob.len() != 4 || len(ob.batches) != 0 || p.Stats().Delivered != 0 {
		t.Errorf("failing OnReceipts: %d entries left, %d deletes, stats %+v", ob.len(), len(ob.batches), p.Stats())
	}
}
