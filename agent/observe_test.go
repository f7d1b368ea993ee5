package agent

import (
	"context"
	"errors"
	"fmt"
	gosync "sync"
	"testing"
	"time"

	"github.com/edgeseal/edgeseal/agent/policy"
	"github.com/edgeseal/edgeseal/bundle/custody"
)

// countObserver records what the core reports.
type countObserver struct {
	mu       gosync.Mutex
	accepted int
	rejected map[string]int
	seals    int
	fails    int
	tpm      map[string]int
}

func (o *countObserver) ExportAccepted() { o.mu.Lock(); o.accepted++; o.mu.Unlock() }
func (o *countObserver) ExportRejected(r string) {
	o.mu.Lock()
	o.rejected[r]++
	o.mu.Unlock()
}
func (o *countObserver) Sealed(d time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if d <= 0 {
		panic("seal without a duration")
	}
	o.seals++
}
func (o *countObserver) SealFailed()        { o.mu.Lock(); o.fails++; o.mu.Unlock() }
func (o *countObserver) TPMError(op string) { o.mu.Lock(); o.tpm[op]++; o.mu.Unlock() }

// The observer sees accepted and rejected exports by reason, seals, and
// the TPM error of a seal refused after a PCR change; Outbox reports the
// bundles waiting and when the oldest was sealed.
func TestObserverAndOutbox(t *testing.T) {
	ctx := context.Background()
	r := openSimRig(t, t.TempDir())
	r.withPolicy()
	obs := &countObserver{rejected: map[string]int{}, tpm: map[string]int{}}
	r.core.obs = obs
	for i := range 3 {
		if _, err := r.core.Ingest(ctx, n8n, "test", invoice(fmt.Sprint("ok-", i))); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := r.core.Ingest(ctx, n8n, "test", invoice("ok-0")); err != nil { // a repeat: not counted
		t.Fatal(err)
	}
	bad := invoice("wf")
	bad.Workflow = "nope"
	if _, err := r.core.Ingest(ctx, n8n, "test", bad); err == nil {
		t.Fatal("unknown workflow accepted")
	}
	if _, err := r.core.Ingest(ctx, auditor, "test", invoice("aud")); err == nil {
		t.Fatal("auditor export accepted")
	}
	if err := r.core.Reject(ctx, custody.Actor{Kind: "principal", ID: n8n.Name, Via: "test"}, invoice("x"), errors.New("garbled")); err == nil {
		t.Fatal("Reject returned nil")
	}
	if st, err := r.core.OutboxState(ctx); err != nil || st.Depth != 0 || !st.Oldest.IsZero() {
		t.Fatalf("empty outbox: %+v %v", st, err)
	}
	before := time.Now()
	r.seal()
	r.export(1, "more")
	r.seal()
	st, err := r.core.OutboxState(ctx)
	if err != nil || st.Depth != 2 || st.Oldest.Before(before.Add(-time.Second)) || st.Oldest.After(time.Now()) {
		t.Fatalf("outbox after two seals: %+v %v (test began %v)", st, err, before)
	}
	if err := r.tpm.ExtendPCR(ctx, 7, []byte("kernel update")); err != nil {
		t.Fatal(err)
	}
	r.export(1, "after-pcr")
	if _, err := r.core.Seal(ctx); err == nil {
		t.Fatal("sealed after a PCR change")
	}
	obs.mu.Lock()
	defer obs.mu.Unlock()
	want := fmt.Sprint(map[string]int{string(policy.RuleUnknownWorkflow): 1, ReasonForbidden: 1, ReasonInvalid: 1})
	if obs.accepted != 5 || fmt.Sprint(obs.rejected) != want || obs.seals != 2 || obs.fails != 1 || obs.tpm["sign"] != 1 {
		t.Fatalf("observed accepted %d rejected %v seals %d fails %d tpm %v; want 5 %s 2 1 map[sign:1]",
			obs.accepted, obs.rejected, obs.seals, obs.fails, obs.tpm, want)
	}
}

// Records are stamped in sequence order even when exports race and the
// clock steps back: a verifier refuses a record older than the one before.
func TestRecordTimesSteppingClock(t *testing.T) {
	ctx := context.Background()
	r := openSimRig(t, t.TempDir())
	r.withPolicy()
	var mu gosync.Mutex
	clock := time.Now()
	r.core.opts.Now = func() time.Time { // steps back a second every 7th call
		mu.Lock()
		defer mu.Unlock()
		clock = clock.Add(time.Millisecond)
		if clock.Nanosecond()/int(time.Millisecond)%7 == 0 {
			clock = clock.Add(-time.Second)
		}
		return clock
	}
	var wg gosync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := range 10 {
				if _, err := r.core.Ingest(ctx, n8n, "test", invoice(fmt.Sprintf("t-%d-%d", w, i))); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	_, b := r.seal()
	mustVerify(t, b, r.trust(), nil)
	var prev time.Time
	for seq := range r.j.Size() {
		rec := mustRecord(t, r.j, seq)
		if rec.Time.Before(prev) {
			t.Fatalf("record %d at %v before its predecessor at %v", seq, rec.Time, prev)
		}
		prev = rec.Time
	}
}
