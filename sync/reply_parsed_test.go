package sync

import (
	"context"
	"crypto/sha256"
	"errors"
	"reflect"
	"slices"
	"testing"

	"github.com/edgeseal/edgeseal/bundle/archivesig"
)

// TestHandleRepliesParsed: with OnParsedReceipts the publisher hands on
// each receipt as it parsed and verified it (its bytes, envelope and
// receipt, the receipt equal to archivesig.ParseReceipt's of the bytes),
// OnReceipts is not called, a receipt signed by another key never
// reaches the callback, and a run the callback refuses is handed over
// again one receipt at a time, still parsed.
func TestHandleRepliesParsed(t *testing.T) {
	keys, other := newArchiveKeys(t), newArchiveKeys(t)
	data := map[string][]byte{}
	ob := &batchOutbox{memOutbox: newMemOutbox()}
	for _, id := range []string{"a", "b", "c"} {
		data[id] = bundleBytes("parsed-"+id, 100)
		ob.put(id, data[id])
	}
	receipt := func(k *archiveKeys, id string) []byte { return k.receipt(t, sha256.Sum256(data[id]), "site1/dev1") }
	raw := map[string][]byte{"a": receipt(keys, "a"), "b": receipt(keys, "b"), "c": receipt(keys, "c")}
	ctx := context.Background()

	var calls [][]string
	refuse := "" // an id whose receipt the callback refuses
	o := pubOptions("tcp://127.0.0.1:1", "dev1", ob, keys)
	o.OnReceipts = func(context.Context, []string, [][]byte) error {
		t.Error("OnReceipts called beside OnParsedReceipts")
		return nil
	}
	o.OnParsedReceipts = func(_ context.Context, ids []string, rs []archivesig.ParsedReceipt) error {
		if len(ids) != len(rs) {
			t.Fatalf("OnParsedReceipts: %d ids, %d receipts", len(ids), len(rs))
		}
		for i, id := range ids {
			env, want, err := archivesig.ParseReceipt(raw[id])
			if err != nil {
				t.Fatal(err)
			}
			if string(rs[i].Raw) != string(raw[id]) || rs[i].Envelope == nil || rs[i].Envelope.PayloadType != env.PayloadType ||
				!reflect.DeepEqual(rs[i].Receipt, want) {
				t.Errorf("OnParsedReceipts: receipt %d is not %s's as ParseReceipt reads it: %+v", i, id, rs[i])
			}
			if slices.Contains(ids, refuse) && len(ids) > 1 {
				calls = append(calls, slices.Clone(ids))
				return errors.New("refused together")
			}
			if id == refuse {
				calls = append(calls, slices.Clone(ids))
				return errors.New("refused")
			}
		}
		calls = append(calls, slices.Clone(ids))
		return nil
	}
	p, err := NewPublisher(o)
	if err != nil {
		t.Fatal(err)
	}
	forged := receipt(other, "a")
	errs := p.handleReplies(ctx, [][]byte{forged, raw["a"]})
	if _, ok := errors.AsType[*ReplyError](errs[0]); !ok || errs[1] != nil {
		t.Fatalf("a receipt signed by another key, then a's: %v", errs)
	}
	if want := [][]string{{"a"}}; !slices.EqualFunc(calls, want, slices.Equal) {
		t.Fatalf("OnParsedReceipts calls %q, want %q", calls, want)
	}

	// b and c together, c refused: c's refusal refuses the run, then each
	// is handed over alone, parsed; b is delivered, c stays.
	calls, refuse = nil, "c"
	errs = p.handleReplies(ctx, [][]byte{raw["b"], raw["c"]})
	if errs[0] != nil || errs[1] == nil {
		t.Fatalf("b and c with c refused: %v", errs)
	}
	if want := [][]string{{"b", "c"}, {"b"}, {"c"}, {"c"}}; !slices.EqualFunc(calls, want, slices.Equal) {
		t.Errorf("OnParsedReceipts calls %q, want %q", calls, want)
	}
	if !ob.has("c") || ob.len() != 1 || p.Stats().Delivered != 2 {
		t.Errorf("outbox after the replies: has c %v, %d entries, stats %+v", ob.has("c"), ob.len(), p.Stats())
	}
}
