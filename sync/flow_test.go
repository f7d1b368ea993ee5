package sync

import (
	"context"
	"crypto/sha256"
	"errors"
	"testing"
	"time"
)

func TestTokenBucket(t *testing.T) {
	now := time.Unix(0, 0)
	b := newTokenBucket(1000, 500, func() time.Time { return now })
	// The burst is max(burst, rate) = 1000 bytes: free.
	if d := b.reserve(1000); d != 0 {
		t.Fatalf("burst: wait %v", d)
	}
	// Then each byte costs 1 ms.
	if d := b.reserve(250); d != 250*time.Millisecond {
		t.Fatalf("after burst: wait %v, want 250ms", d)
	}
	now = now.Add(250 * time.Millisecond) // paid the debt
	if d := b.reserve(100); d != 100*time.Millisecond {
		t.Fatalf("wait %v, want 100ms", d)
	}
	now = now.Add(10 * time.Second) // refills to the burst, not beyond
	if d := b.reserve(1000); d != 0 {
		t.Fatalf("refill: wait %v", d)
	}
	if d := b.reserve(1); d <= 0 {
		t.Fatal("bucket refilled beyond its burst")
	}
	// A frame larger than the burst passes at the average rate.
	if d := b.reserve(5000); d < 5*time.Second {
		t.Fatalf("big frame: wait %v", d)
	}
	var unlimited *tokenBucket
	if unlimited.reserve(1<<30) != 0 || newTokenBucket(0, 10, time.Now).reserve(1<<30) != 0 {
		t.Error("unlimited bucket waits")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := newTokenBucket(1, 1, time.Now).wait(ctx, 100); !errors.Is(err, context.Canceled) {
		t.Errorf("wait after cancel: %v", err)
	}
}

func TestBackoff(t *testing.T) {
	b := backoff{min: 100 * time.Millisecond, max: time.Second}
	var prevCap time.Duration
	for i := range 40 {
		d := b.next()
		capD := min(time.Second, 100*time.Millisecond<<min(i, 30))
		if d < capD/2 || d > capD {
			t.Fatalf("attempt %d: %v outside [%v, %v]", i, d, capD/2, capD)
		}
		if capD < prevCap {
			t.Fatal("cap decreased")
		}
		prevCap = capD
	}
	b.reset()
	if d := b.next(); d > 100*time.Millisecond {
		t.Errorf("after reset: %v", d)
	}
}

// TestHandleReply covers the receipt checks without a broker.
func TestHandleReply(t *testing.T) {
	keys := newArchiveKeys(t)
	ob := newMemOutbox()
	data := bundleBytes("reply", 100)
	digest := sha256.Sum256(data)
	ob.put("a", data)
	var called []string
	o := pubOptions("tcp://127.0.0.1:1", "dev1", ob, keys)
	o.ArchiveKeyID = keys.KeyID
	o.OnReceipt = func(ctx context.Context, id string, r []byte) error {
		called = append(called, id)
		if len(called) == 1 {
			return errors.New("journal full")
		}
		return nil
	}
	p, err := NewPublisher(o)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	var re *ReplyError
	for name, reply := range map[string][]byte{
		"garbage":      []byte("not json"),
		"other key":    newArchiveKeys(t).receipt(t, digest, "site1/dev1"),
		"other digest": keys.receipt(t, sha256.Sum256([]byte("x")), "site1/dev1"),
		"other device": keys.receipt(t, digest, "site1/dev2"),
	} {
		if err := p.handleReply(ctx, reply); !errors.As(err, &re) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if !ob.has("a") || len(called) != 0 {
		t.Fatal("bad replies touched the outbox")
	}
	good := keys.receipt(t, digest, "site1/dev1")
	// OnReceipt fails: the entry stays.
	if err := p.handleReply(ctx, good); err == nil || errors.As(err, &re) || !ob.has("a") {
		t.Fatalf("failing OnReceipt: %v, entry kept %v", err, ob.has("a"))
	}
	if err := p.handleReply(ctx, good); err != nil || ob.has("a") {
		t.Fatalf("good receipt: %v", err)
	}
	// A duplicate receipt is harmless and does not call OnReceipt again.
	if err := p.handleReply(ctx, good); err != nil || len(called) != 2 {
		t.Fatalf("duplicate: %v, OnReceipt calls %d", err, len(called))
	}
	if st := p.Stats(); st.Delivered != 1 || st.BadReplies != 4 {
		t.Errorf("stats %+v", st)
	}
}

func TestRejectionFormat(t *testing.T) {
	keys := newArchiveKeys(t)
	d := sha256.Sum256([]byte("b"))
	raw := keys.rejection(t, d, "site1/dev1", "fork")
	r, err := VerifyRejection(raw, keys.KeyID, keys.Pub)
	if err != nil || r.Reason != "fork" || r.Checks[0] != "seal.signature" {
		t.Fatalf("%v %+v", err, r)
	}
	if _, err := VerifyRejection(raw, "", keys.Pub); err != nil {
		t.Errorf("any key id: %v", err)
	}
	if _, err := VerifyRejection(raw, "other-id", keys.Pub); err == nil {
		t.Error("other key id accepted")
	}
	if _, err := VerifyRejection(raw, "", newArchiveKeys(t).Pub); err == nil {
		t.Error("other key accepted")
	}
	if _, err := VerifyRejection(keys.receipt(t, d, "site1/dev1"), "", keys.Pub); err == nil {
		t.Error("receipt accepted as rejection")
	}
	if _, err := SignRejection(&Rejection{BundleDigest: "x", Device: "site1/dev1", Reason: "r"}, "k", keys.Priv); err == nil {
		t.Error("bad digest signed")
	}
}

// TestRequeueAfterGap: a later entry rejected while an earlier one was
// missing is sent again once the earlier one is delivered; a rejected
// entry earlier than the delivered one stays held.
func TestRequeueAfterGap(t *testing.T) {
	keys := newArchiveKeys(t)
	ob := newMemOutbox()
	data := map[string][]byte{}
	for _, id := range []string{"1", "2", "3"} {
		data[id] = bundleBytes("gap"+id, 200)
		ob.put(id, data[id])
	}
	p, err := NewPublisher(pubOptions("tcp://127.0.0.1:1", "dev1", ob, keys))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, id := range []string{"1", "3"} {
		if err := p.handleReply(ctx, keys.rejection(t, sha256.Sum256(data[id]), "site1/dev1", "gap")); err != nil {
			t.Fatal(err)
		}
	}
	if st := p.Stats(); st.Held != 2 || st.Rejected != 2 {
		t.Fatalf("stats %+v", st)
	}
	if err := p.handleReply(ctx, keys.receipt(t, sha256.Sum256(data["2"]), "site1/dev1")); err != nil {
		t.Fatal(err)
	}
	st := p.Stats()
	if st.Held != 1 || st.Requeued != 1 || !p.held["1"] || ob.has("2") || !ob.has("3") {
		t.Errorf("after delivering 2: stats %+v, held %v", st, p.held)
	}
}

// TestRetryHeld: rejected entries are sent once more after RetryHeld
// (the device may have been approved meanwhile), the wait doubling up to
// 8 times while nothing is delivered, and reset by a delivery.
func TestRetryHeld(t *testing.T) {
	keys := newArchiveKeys(t)
	ob := newMemOutbox()
	data := map[string][]byte{}
	for _, id := range []string{"1", "2"} {
		data[id] = bundleBytes("held"+id, 200)
		ob.put(id, data[id])
	}
	o := pubOptions("tcp://127.0.0.1:1", "dev1", ob, keys)
	o.RetryHeld = time.Minute
	p, err := NewPublisher(o)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 11, 26, 4, 0, 0, 0, time.UTC)
	p.now = func() time.Time { return now }
	ctx := context.Background()
	reject := func(id string) {
		t.Helper()
		if err := p.handleReply(ctx, keys.rejection(t, sha256.Sum256(data[id]), "site1/dev1", "device not approved")); err != nil {
			t.Fatal(err)
		}
	}
	reject("1")
	reject("2")
	p.retryHeld()
	if st := p.Stats(); st.Held != 2 || st.Requeued != 0 {
		t.Fatalf("retried at once: %+v", st)
	}
	// The waits: 1, 2, 4, 8, 8 minutes.
	for i, wait := range []time.Duration{1, 2, 4, 8, 8} {
		now = now.Add(wait*time.Minute - time.Second)
		p.retryHeld()
		if p.Stats().Held != 2 {
			t.Fatalf("retry %d came before its %v wait", i, wait*time.Minute)
		}
		now = now.Add(time.Second)
		p.retryHeld()
		if st := p.Stats(); st.Held != 0 || st.Requeued != uint64(2*(i+1)) {
			t.Fatalf("retry %d after %v: %+v", i, wait*time.Minute, st)
		}
		reject("1")
		reject("2")
	}
	// A delivery resets the wait to RetryHeld.
	if err := p.handleReply(ctx, keys.receipt(t, sha256.Sum256(data["1"]), "site1/dev1")); err != nil {
		t.Fatal(err)
	}
	reject("2")
	now = now.Add(time.Minute)
	p.retryHeld()
	if st := p.Stats(); st.Held != 0 {
		t.Fatalf("wait not reset by a delivery: %+v", st)
	}
	o.RetryHeld = -1
	never, _ := NewPublisher(o)
	never.now = p.now
	if err := never.handleReply(ctx, keys.rejection(t, sha256.Sum256(data["2"]), "site1/dev1", "x")); err != nil {
		t.Fatal(err)
	}
	now = now.Add(24 * time.Hour)
	never.retryHeld()
	if never.Stats().Held != 1 {
		t.Fatal("negative RetryHeld retried")
	}
}

// TestStaleGapRejection: a gap rejection of an entry sent before an
// earlier entry was delivered is stale (the missing bundle arrived
// meanwhile): the entry is sent again, not held. A rejection for the
// bundle itself, or a gap with nothing delivered since, holds it.
func TestStaleGapRejection(t *testing.T) {
	keys := newArchiveKeys(t)
	ob := newMemOutbox()
	data := map[string][]byte{}
	for _, id := range []string{"1", "2", "3"} {
		data[id] = bundleBytes("stale"+id, 300)
		ob.put(id, data[id])
	}
	p, err := NewPublisher(pubOptions("tcp://127.0.0.1:1", "dev1", ob, keys))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for i, id := range []string{"1", "2", "3"} {
		p.inflight[id] = &flight{digest: sha256.Sum256(data[id]), order: uint64(i), epoch: 0}
	}
	if err := p.handleReply(ctx, keys.receipt(t, sha256.Sum256(data["1"]), "site1/dev1")); err != nil {
		t.Fatal(err)
	}
	// 2 was sent before 1 was delivered: its gap rejection is stale.
	if err := p.handleReply(ctx, keys.rejection(t, sha256.Sum256(data["2"]), "site1/dev1", "gap", GapCheck)); err != nil {
		t.Fatal(err)
	}
	if st := p.Stats(); st.Held != 0 || st.Requeued != 1 || !ob.has("2") {
		t.Fatalf("stale gap: %+v", st)
	}
	// 3 refused for itself: held although 1 was delivered since.
	if err := p.handleReply(ctx, keys.rejection(t, sha256.Sum256(data["3"]), "site1/dev1", "bad signature")); err != nil {
		t.Fatal(err)
	}
	if st := p.Stats(); st.Held != 1 || !p.held["3"] {
		t.Fatalf("rejection for the bundle itself: %+v", st)
	}
	// 2 sent again after that delivery and refused as a gap: held.
	p.inflight["2"] = &flight{digest: sha256.Sum256(data["2"]), epoch: p.stats.Delivered}
	if err := p.handleReply(ctx, keys.rejection(t, sha256.Sum256(data["2"]), "site1/dev1", "gap", GapCheck)); err != nil {
		t.Fatal(err)
	}
	if st := p.Stats(); st.Held != 2 || !p.held["2"] {
		t.Fatalf("gap with nothing delivered since: %+v", st)
	}
	// 4 is not in flight (a go-back put it back for the next pump): a gap
	// rejection of an earlier copy does not hold it, else nothing but
	// RetryHeld would send it again.
	data["4"] = bundleBytes("stale4", 300)
	ob.put("4", data["4"])
	requeued := p.Stats().Requeued
	if err := p.handleReply(ctx, keys.rejection(t, sha256.Sum256(data["4"]), "site1/dev1", "gap", GapCheck)); err != nil {
		t.Fatal(err)
	}
	if st := p.Stats(); st.Held != 2 || p.held["4"] || st.Requeued != requeued+1 {
		t.Fatalf("gap rejection of an entry not in flight: %+v", st)
	}
}

// TestGapHeldRetried: an entry refused for a gap and held, with nothing
// earlier left to deliver (so no delivery requeues it), is sent again
// after ResendAfter, not only after RetryHeld; one refused for itself
// stays held.
func TestGapHeldRetried(t *testing.T) {
	keys := newArchiveKeys(t)
	ob := newMemOutbox()
	data := map[string][]byte{"1": bundleBytes("gap1", 300), "2": bundleBytes("gap2", 300)}
	for id, b := range data {
		ob.put(id, b)
	}
	o := pubOptions("tcp://127.0.0.1:1", "dev1", ob, keys)
	o.ResendAfter = time.Minute
	o.RetryHeld = -1 // never: only the gap retry may send them again
	p, err := NewPublisher(o)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1_000_000, 0)
	p.now = func() time.Time { return now }
	ctx := context.Background()
	p.inflight["1"] = &flight{digest: sha256.Sum256(data["1"]), epoch: p.stats.Delivered}
	p.inflight["2"] = &flight{digest: sha256.Sum256(data["2"]), epoch: p.stats.Delivered}
	if err := p.handleReply(ctx, keys.rejection(t, sha256.Sum256(data["1"]), "site1/dev1", "gap", GapCheck)); err != nil {
		t.Fatal(err)
	}
	if err := p.handleReply(ctx, keys.rejection(t, sha256.Sum256(data["2"]), "site1/dev1", "bad signature")); err != nil {
		t.Fatal(err)
	}
	if !p.held["1"] || !p.held["2"] {
		t.Fatalf("held %v, want both", p.held)
	}
	now = now.Add(o.ResendAfter - time.Second)
	p.retryHeld()
	if !p.held["1"] {
		t.Fatal("gap-held entry sent again before ResendAfter")
	}
	now = now.Add(time.Second)
	p.retryHeld()
	if p.held["1"] || !p.held["2"] || p.Stats().Requeued != 1 {
		t.Fatalf("after ResendAfter: held %v, %+v", p.held, p.Stats())
	}
	if len(p.gapHeld) != 0 {
		t.Fatalf("gap times left: %v", p.gapHeld)
	}
}

// TestHeldRejection: a rejection naming HeldCheck (an archive replica
// answered before the bundle's predecessor was committed) is treated as
// a gap: stale when an entry was delivered since it was sent (sent
// again at once), else held and sent again after ResendAfter, and at
// the delivery of an earlier entry.
func TestHeldRejection(t *testing.T) {
	keys := newArchiveKeys(t)
	ob := newMemOutbox()
	data := map[string][]byte{"1": bundleBytes("held1", 300), "2": bundleBytes("held2", 300), "3": bundleBytes("held3", 300)}
	for id, b := range data {
		ob.put(id, b)
	}
	o := pubOptions("tcp://127.0.0.1:1", "dev1", ob, keys)
	o.ResendAfter = time.Minute
	o.RetryHeld = -1
	p, err := NewPublisher(o)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1_000_000, 0)
	p.now = func() time.Time { return now }
	ctx := context.Background()
	for _, id := range []string{"1", "2", "3"} {
		p.inflight[id] = &flight{digest: sha256.Sum256(data[id]), epoch: p.stats.Delivered}
	}
	// 3 held with nothing delivered since it was sent: held, as a gap.
	if err := p.handleReply(ctx, keys.rejection(t, sha256.Sum256(data["3"]), "site1/dev1", "held", HeldCheck)); err != nil {
		t.Fatal(err)
	}
	if !p.held["3"] {
		t.Fatal("held rejection: entry not held")
	}
	if _, ok := p.gapHeld["3"]; !ok {
		t.Fatal("held rejection not retried as a gap")
	}
	// 1 delivered: 3 is sent again at once.
	if err := p.handleReply(ctx, keys.receipt(t, sha256.Sum256(data["1"]), "site1/dev1")); err != nil {
		t.Fatal(err)
	}
	if p.held["3"] {
		t.Fatal("held entry not sent again after an earlier one was delivered")
	}
	// 2 was sent before 1 was delivered: its held rejection is stale.
	requeued := p.Stats().Requeued
	if err := p.handleReply(ctx, keys.rejection(t, sha256.Sum256(data["2"]), "site1/dev1", "held", HeldCheck)); err != nil {
		t.Fatal(err)
	}
	if st := p.Stats(); p.held["2"] || st.Requeued != requeued+1 {
		t.Fatalf("stale held rejection: held %v, %+v", p.held, st)
	}
	// Held again with nothing delivered since: sent after HeldRetry.
	p.inflight["2"] = &flight{digest: sha256.Sum256(data["2"]), epoch: p.stats.Delivered}
	if err := p.handleReply(ctx, keys.rejection(t, sha256.Sum256(data["2"]), "site1/dev1", "held", HeldCheck)); err != nil {
		t.Fatal(err)
	}
	if !p.held["2"] {
		t.Fatal("held rejection with nothing delivered since: not held")
	}
	now = now.Add(p.opts.HeldRetry)
	p.retryHeld()
	if p.held["2"] {
		t.Fatal("held entry not sent again after HeldRetry")
	}
}

// TestHeldResentSoon: an entry answered held is sent again after
// HeldRetry, not after ResendAfter; a repeated held answer doubles the
// wait up to 16 times HeldRetry and never past ResendAfter; its delivery
// resets it; a gap rejection still waits ResendAfter; the held answer
// wakes the sender when its wait is over (no tick needed).
func TestHeldResentSoon(t *testing.T) {
	keys := newArchiveKeys(t)
	ob := newMemOutbox()
	data := map[string][]byte{"1": bundleBytes("soon1", 300), "2": bundleBytes("soon2", 300), "3": bundleBytes("soon3", 300)}
	for id, b := range data {
		ob.put(id, b)
	}
	o := pubOptions("tcp://127.0.0.1:1", "dev1", ob, keys)
	o.ResendAfter = time.Minute
	o.RetryHeld = -1
	o.HeldRetry = 20 * time.Millisecond
	p, err := NewPublisher(o)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1_000_000, 0)
	p.now = func() time.Time { return now }
	ctx := context.Background()
	send := func(id string) {
		t.Helper()
		p.mu.Lock()
		p.inflight[id] = &flight{digest: sha256.Sum256(data[id]), epoch: p.stats.Delivered}
		p.mu.Unlock()
	}
	reject := func(id string, checks ...string) {
		t.Helper()
		if err := p.handleReply(ctx, keys.rejection(t, sha256.Sum256(data[id]), "site1/dev1", "no", checks...)); err != nil {
			t.Fatal(err)
		}
		if !p.held[id] {
			t.Fatalf("%s: not held after rejection %v", id, checks)
		}
	}
	// waitOut checks id is not sent again just before wait, and is at it.
	waitOut := func(id string, wait time.Duration) {
		t.Helper()
		now = now.Add(wait - time.Millisecond)
		p.retryGaps()
		if !p.held[id] {
			t.Fatalf("%s sent again before %v", id, wait)
		}
		now = now.Add(time.Millisecond)
		p.retryGaps()
		if p.held[id] {
			t.Fatalf("%s not sent again after %v", id, wait)
		}
	}

	// The held answer kicks the sender once its wait is over.
	for len(p.wake) > 0 {
		<-p.wake
	}
	send("2")
	reject("2", HeldCheck)
	for len(p.wake) > 0 {
		<-p.wake // the kick of the rejection itself
	}
	select {
	case <-p.wake:
	case <-time.After(5 * time.Second):
		t.Fatal("held answer: the sender was not woken after HeldRetry")
	}
	waitOut("2", o.HeldRetry)
	// Held again and again: 40, 80, 160, 320 ms, then capped at 16x.
	for _, k := range []time.Duration{2, 4, 8, 16, 16} {
		send("2")
		reject("2", HeldCheck)
		waitOut("2", k*o.HeldRetry)
	}
	// Delivered: the next held answer of the same id starts over.
	send("2")
	if err := p.handleReply(ctx, keys.receipt(t, sha256.Sum256(data["2"]), "site1/dev1")); err != nil {
		t.Fatal(err)
	}
	if _, ok := p.heldBack["2"]; ok {
		t.Fatal("delivery kept the held backoff")
	}
	send("3")
	reject("3", HeldCheck)
	waitOut("3", o.HeldRetry)
	// A gap still waits ResendAfter, even for an entry held before.
	send("3")
	reject("3", GapCheck)
	waitOut("3", o.ResendAfter)
	// Never past ResendAfter.
	o.ResendAfter = 50 * time.Millisecond
	short, err := NewPublisher(o)
	if err != nil {
		t.Fatal(err)
	}
	short.now = p.now
	p = short
	for _, w := range []time.Duration{20, 40, 50, 50} {
		send("1")
		reject("1", HeldCheck)
		waitOut("1", w*time.Millisecond)
	}
}
