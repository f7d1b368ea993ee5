package statetest

import (
	"bytes"
	"testing"

	"github.com/edgeseal/edgeseal/archive/state"
)

// StatementsOpener opens a view of the statement queue named name (two
// views of one name are two processes sharing it).
type StatementsOpener func(t *testing.T, name string) state.Statements

// RunStatements runs the conformance suite of state.Statements.
func RunStatements(t *testing.T, open StatementsOpener) {
	ctx := t.Context()
	a, b := open(t, "sa"), open(t, "sa")
	if p, err := a.Pending(ctx, 10); err != nil || len(p) != 0 {
		t.Fatalf("empty queue: %v %v", p, err)
	}
	recs := [][]byte{[]byte(`{"n":1}`), []byte(`{"n":2}`), []byte(`{"n":3}`)}
	ids := make([]string, len(recs))
	for i, rec := range recs {
		id, err := a.Queue(ctx, rec)
		must(t, err)
		ids[i] = id
	}
	if id, err := b.Queue(ctx, recs[0]); err != nil || id != ids[0] {
		t.Fatalf("the same statement queued again: id %q %v, want %q", id, err, ids[0])
	}
	pend := func(max int, want ...int) {
		t.Helper()
		p, err := b.Pending(ctx, max)
		must(t, err)
		if len(p) != len(want) {
			t.Fatalf("pending %d statements, want %d", len(p), len(want))
		}
		for k, w := range want {
			if p[k].ID != ids[w] || !bytes.Equal(p[k].Rec, recs[w]) {
				t.Fatalf("pending %d: %s %q, want %s %q (oldest first)", k, p[k].ID, p[k].Rec, ids[w], recs[w])
			}
		}
	}
	pend(10, 0, 1, 2)
	pend(2, 0, 1)
	must(t, b.Done(ctx, ids[0]))
	must(t, a.Done(ctx, ids[0])) // taken by the other first: no error
	pend(10, 1, 2)
	must(t, a.Refuse(ctx, ids[1], "bad signature"))
	pend(10, 2)
	if _, err := a.Queue(ctx, recs[1]); err != nil {
		t.Fatal(err)
	}
	pend(10, 2) // a refused statement queued again stays refused
	must(t, a.Refuse(ctx, "12345678", "unknown"))
	for _, bad := range [][]byte{nil, make([]byte, state.MaxStatement+1)} {
		if _, err := a.Queue(ctx, bad); err == nil {
			t.Errorf("statement of %d bytes queued", len(bad))
		}
	}
	if err := a.Done(ctx, "not-an-id"); err == nil {
		t.Error("Done of a malformed id: no error")
	}
	must(t, a.Done(ctx, ids[2]))
	pend(10)
}
