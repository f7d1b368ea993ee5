package archive_test

import (
	"bytes"
	"crypto/sha256"
	"errors"
	gosync "sync"
	"testing"
	"time"

	"github.com/edgeseal/edgeseal/archive"
	"github.com/edgeseal/edgeseal/bundle/archivesig"
	"github.com/edgeseal/edgeseal/bundle/bundletest"
	"github.com/edgeseal/edgeseal/bundle/wire"
)

// provenFrom requires next to prove consistency from prev's archive
// checkpoint (what the agent checks, archivesig.CheckConsistency).
func provenFrom(t *testing.T, prev, next *archivesig.Receipt) {
	t.Helper()
	last, err := prev.ArchiveRoot()
	if err != nil {
		t.Fatal(err)
	}
	if next.WitnessFrom != last.Size {
		t.Fatalf("receipt of log index %d proves from %d, want %d (the previous receipt's checkpoint)", next.LogIndex, next.WitnessFrom, last.Size)
	}
	if _, err := archivesig.CheckConsistency(&last, next); err != nil {
		t.Fatalf("receipt of log index %d: %v", next.LogIndex, err)
	}
}

// TestReplicaLeaseFreeWhileReceipting: a replica releases a device's
// lease once its bundle is logged and its chain advanced, before the
// bundle's receipt (kept waiting here): another replica admits the next
// bundle at once, and its receipt waits for the first one's to be
// recorded and proves consistency from its checkpoint. Both verify,
// each bundle is logged once.
func TestReplicaLeaseFreeWhileReceipting(t *testing.T) {
	r := newReplicas(t, 2)
	c := newChain(t, 2, bundletest.Options{Site: "site1", Device: "dev1", Records: 3})
	r.approve(c)
	data := [][]byte{raw(t, c.Bundles[0]), raw(t, c.Bundles[1])}
	d0 := sha256.Sum256(data[0])
	const slow = 2 * time.Second // the first receipt's recording held back
	advanced := make(chan struct{})
	archive.SetCommitHook(r.rs[0], func(d [32]byte) error {
		if d == d0 {
			close(advanced)
			time.Sleep(slow)
		}
		return nil
	})
	ctx := t.Context()
	type answer struct {
		reply []byte
		err   error
	}
	first := make(chan answer, 1)
	go func() {
		reply, err := r.rs[0].Receive(ctx, c.Opts.Site, c.Opts.Device, data[0])
		first <- answer{reply, err}
	}()
	select {
	case <-advanced:
	case a := <-first:
		t.Fatalf("bundle 0 answered before its receipt was recorded: %v", a.err)
	}
	start := time.Now()
	reply1, err := r.rs[1].Receive(ctx, c.Opts.Site, c.Opts.Device, data[1])
	el := time.Since(start)
	if err != nil {
		t.Fatalf("bundle 1 at the other replica: %v", err)
	}
	a0 := <-first
	if a0.err != nil {
		t.Fatalf("bundle 0: %v", a0.err)
	}
	rc0 := r.verify(a0.reply, data[0], c.DeviceName())
	rc1 := r.verify(reply1, data[1], c.DeviceName())
	if rc1.LogIndex <= rc0.LogIndex {
		t.Fatalf("bundle 1 logged at %d, bundle 0 at %d", rc1.LogIndex, rc0.LogIndex)
	}
	provenFrom(t, rc0, rc1)
	// The lease was free: bundle 1 waited for bundle 0's receipt (about
	// the hook's wait), not for a gap or hold wait on top of it.
	if el >= slow+archive.DefaultGapWait {
		t.Fatalf("bundle 1 answered after %v", el)
	}
	n := r.logged(r.rs[1])
	if len(n) != 2 || n[wire.FormatHash(d0)] != 1 {
		t.Fatalf("log entries by bundle: %v", n)
	}
	if st := r.rs[1].Stats(); st.Held != 0 || st.Refused != 0 {
		t.Fatalf("replica 1: %+v", st)
	}
	r.noAlerts()
}

// TestReplicaKilledBetweenPhases: a replica dies after a bundle's chain
// advance and before its receipt (no receipt, no index event, no
// answer). The device's next bundle, at another replica, is logged and
// advanced, but its receipt waits for the lost one at most its bound
// and is then not signed (a receipt proves consistency from its
// predecessor's, which the device has not taken): answered held, and
// held again when sent again first. The lost bundle
// sent again (to a third replica) is receipted then, proven from the
// receipt before it, journaled in that replica's index and recorded;
// the next one sent again is receipted from it. A later copy anywhere
// gets the same receipt. The log has each bundle once, the replicas
// check clean, nothing is refused or alarmed.
func TestReplicaKilledBetweenPhases(t *testing.T) {
	r := newReplicas(t, 3)
	c := newChain(t, 3, bundletest.Options{Site: "site1", Device: "dev1", Records: 3})
	r.approve(c)
	data := raws(t, c.Bundles)
	killed := errors.New("replica killed between the phases")
	d1 := sha256.Sum256(data[1])
	archive.SetAdvancedHook(r.rs[0], func(d [32]byte) error {
		if d == d1 {
			return killed
		}
		return nil
	})
	ctx := t.Context()
	reply0, err := r.rs[0].Receive(ctx, c.Opts.Site, c.Opts.Device, data[0])
	if err != nil {
		t.Fatal(err)
	}
	rc0 := r.verify(reply0, data[0], c.DeviceName())
	if _, err := r.rs[0].Receive(ctx, c.Opts.Site, c.Opts.Device, data[1]); !errors.Is(err, killed) {
		t.Fatalf("bundle 1 at the dying replica: %v", err)
	}
	r.rs[0].Close()
	r.rs[0] = nil
	// Bundle 2 follows bundle 1 (advanced): advanced too, not
	// receipted, answered held; sent again before bundle 1, held again.
	for _, k := range []int{1, 2} {
		_, err := r.rs[k].Receive(ctx, c.Opts.Site, c.Opts.Device, data[2])
		if rj, ok := errors.AsType[*archive.RejectedError](err); !ok || !rj.Has(archive.CheckHeld) {
			t.Fatalf("bundle 2 at replica %d before bundle 1 is receipted: %v, want held", k, err)
		}
	}
	// Bundle 1 sent again: receipted now, proven from bundle 0's.
	reply1, err := r.rs[2].Receive(ctx, c.Opts.Site, c.Opts.Device, data[1])
	if err != nil {
		t.Fatalf("bundle 1 sent again: %v", err)
	}
	rc1 := r.verify(reply1, data[1], c.DeviceName())
	provenFrom(t, rc0, rc1)
	// Bundle 2 sent again: receipted, proven from bundle 1's.
	reply2, err := r.rs[1].Receive(ctx, c.Opts.Site, c.Opts.Device, data[2])
	if err != nil {
		t.Fatalf("bundle 2 sent again: %v", err)
	}
	rc2 := r.verify(reply2, data[2], c.DeviceName())
	provenFrom(t, rc1, rc2)
	if rc1.LogIndex <= rc0.LogIndex || rc1.LogIndex >= rc2.LogIndex {
		t.Fatalf("bundle 1 at log index %d, between %d and %d expected (it keeps its entry)", rc1.LogIndex, rc0.LogIndex, rc2.LogIndex)
	}
	if st := r.rs[2].Stats(); st.FreshReceipts != 1 {
		t.Fatalf("replica 2: %+v, want one repeat receipted", st)
	}
	for _, k := range []int{1, 2} {
		again, err := r.rs[k].Receive(ctx, c.Opts.Site, c.Opts.Device, data[1])
		if err != nil || !bytes.Equal(again, reply1) {
			t.Fatalf("bundle 1 again at replica %d: %v, or another receipt", k, err)
		}
	}
	// The receipt is recorded: the store's record, and the device's
	// receipt checkpoint is never lowered.
	acc, err := r.sts[1].Bundle(ctx, d1)
	if err != nil || !bytes.Equal(acc.Receipt, reply1) || acc.Pending != nil {
		t.Fatalf("store's record of bundle 1: %+v %v", acc, err)
	}
	ch, err := r.sts[1].Get(ctx, c.DeviceName())
	if err != nil {
		t.Fatal(err)
	}
	if cp2, _ := rc2.ArchiveRoot(); ch.ReceiptSize != cp2.Size {
		t.Fatalf("chain's receipt size %d, want %d (bundle 2's receipt, the largest)", ch.ReceiptSize, cp2.Size)
	}
	n := r.logged(r.rs[1])
	if len(n) != 3 {
		t.Fatalf("the log has %d bundles, want 3", len(n))
	}
	for d, k := range n {
		if k != 1 {
			t.Fatalf("bundle %s is %d times in the log", d, k)
		}
	}
	for _, k := range []int{1, 2} {
		res, err := r.rs[k].Check(ctx)
		if err != nil || !res.OK() {
			t.Fatalf("check of replica %d: %+v %v", k, res, err)
		}
	}
	for _, k := range []int{1, 2} {
		if st := r.rs[k].Stats(); st.Held != 1 || st.Refused != 0 {
			t.Fatalf("replica %d: %+v, want bundle 2 held once", k, st)
		}
	}
	r.noAlerts()
}

// TestReplicaGapBehindAdvanced: bundles of a device dealt alternately to
// two replicas. While replica 0's bundle 0 waits for its receipt, bundle
// 2 reaches replica 0 (a gap: bundle 1 is at replica 1): it waits for
// the chain to move without holding the device's lease, since bundle 0
// is advanced, so replica 1 logs and advances bundle 1 while bundle 0
// is still unreceipted; then bundle 2 is accepted, not held. Each
// receipt proves consistency from the one before.
func TestReplicaGapBehindAdvanced(t *testing.T) {
	r := newReplicas(t, 2)
	c := newChain(t, 3, bundletest.Options{Site: "site1", Device: "dev1", Records: 3})
	r.approve(c)
	data := raws(t, c.Bundles)
	d0, d1 := sha256.Sum256(data[0]), sha256.Sum256(data[1])
	const slow = 4 * time.Second // bundle 0's receipt held back
	advanced0 := make(chan struct{})
	var mu gosync.Mutex
	var receipted0, advanced1 time.Time
	archive.SetCommitHook(r.rs[0], func(d [32]byte) error {
		if d == d0 {
			close(advanced0)
			time.Sleep(slow)
			mu.Lock()
			receipted0 = time.Now()
			mu.Unlock()
		}
		return nil
	})
	archive.SetAdvancedHook(r.rs[1], func(d [32]byte) error {
		if d == d1 {
			mu.Lock()
			advanced1 = time.Now()
			mu.Unlock()
		}
		return nil
	})
	ctx := t.Context()
	type answer struct {
		reply []byte
		err   error
	}
	send := func(k, i int) chan answer {
		ch := make(chan answer, 1)
		go func() {
			reply, err := r.rs[k].Receive(ctx, c.Opts.Site, c.Opts.Device, data[i])
			ch <- answer{reply, err}
		}()
		return ch
	}
	a0 := send(0, 0)
	select {
	case <-advanced0:
	case a := <-a0:
		t.Fatalf("bundle 0 answered before its receipt was recorded: %v", a.err)
	}
	a2 := send(0, 2)
	time.Sleep(200 * time.Millisecond) // bundle 2 admitted first: the gap
	a1 := send(1, 1)
	var rcs []*archivesig.Receipt
	for i, ch := range []chan answer{a0, a1, a2} {
		a := <-ch
		if a.err != nil {
			t.Fatalf("bundle %d: %v", i, a.err)
		}
		rcs = append(rcs, r.verify(a.reply, data[i], c.DeviceName()))
	}
	mu.Lock()
	if advanced1.IsZero() || !advanced1.Before(receipted0) {
		t.Errorf("bundle 1 advanced at %v, bundle 0 receipted at %v: the lease waited for bundle 0's receipt", advanced1, receipted0)
	}
	mu.Unlock()
	provenFrom(t, rcs[0], rcs[1])
	provenFrom(t, rcs[1], rcs[2])
	for k := range r.rs {
		if st := r.rs[k].Stats(); st.Held != 0 || st.Refused != 0 {
			t.Fatalf("replica %d: %+v", k, st)
		}
	}
	r.noAlerts()
}
