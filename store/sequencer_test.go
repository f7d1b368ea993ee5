package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestConcurrentAppends(t *testing.T) {
	ctx := context.Background()
	j := openT(t, t.TempDir(), func(o *Options) { o.MaxBatch = 16 })
	defer j.Close()
	const writers, each = 16, 40
	var mu sync.Mutex
	got := map[uint64][32]byte{}
	var wg sync.WaitGroup
	errc := make(chan error, writers)
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				var as []Appended
				var err error
				if i%10 == 9 {
					as, err = j.AppendBatch(ctx, []Entry{{Build: build(fmt.Sprint(w, i, "a"))}, {Build: build(fmt.Sprint(w, i, "b"))}})
				} else {
					var a Appended
					a, err = j.Append(ctx, Entry{Build: build(fmt.Sprint(w, i))})
					as = []Appended{a}
				}
				if err != nil {
					errc <- err
					return
				}
				if len(as) == 2 && as[1].Seq != as[0].Seq+1 {
					errc <- fmt.Errorf("batch not consecutive: %+v", as)
					return
				}
				mu.Lock()
				for _, a := range as {
					if _, dup := got[a.Seq]; dup {
						errc <- fmt.Errorf("seq %d acknowledged twice", a.Seq)
					}
					got[a.Seq] = a.Leaf
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Fatal(err)
	}
	want := uint64(writers * (each + each/10))
	if j.Size() != want || uint64(len(got)) != want {
		t.Fatalf("size %d, acknowledged %d, want %d", j.Size(), len(got), want)
	}
	for seq := range want {
		leaf, ok := got[seq]
		if !ok {
			t.Fatalf("gap at seq %d", seq)
		}
		rec, err := j.Record(seq)
		if err != nil || leafHash(rec) != leaf {
			t.Fatalf("record %d: %v, leaf mismatch", seq, err)
		}
	}
	n := 0
	if err := j.Scrub(ctx, func(seq uint64, rec []byte, prev [32]byte) error {
		n++
		return checkEmbedded(seq, rec, prev)
	}); err != nil || uint64(n) != want {
		t.Fatalf("scrub: %v after %d records", err, n)
	}
}

func TestBuildErrorIsolation(t *testing.T) {
	ctx := context.Background()
	j := openT(t, t.TempDir())
	defer j.Close()
	boom := errors.New("boom")
	res, err := j.AppendBatch(ctx, []Entry{
		{Build: build("ok0")},
		{Build: func(uint64, [32]byte) ([]byte, error) { return nil, boom }},
		{Build: func(uint64, [32]byte) ([]byte, error) { panic("kaboom") }},
		{Build: func(uint64, [32]byte) ([]byte, error) { return nil, nil }},
		{Build: build("ok1")},
	})
	var be *BatchError
	if !errors.As(err, &be) || len(be.Errs) != 5 {
		t.Fatalf("batch error: %v", err)
	}
	if !errors.Is(err, boom) || be.Errs[0] != nil || be.Errs[4] != nil || be.Errs[2] == nil || be.Errs[3] == nil {
		t.Fatalf("per-entry errors: %v", be.Errs)
	}
	var bld *BuildError
	if !errors.As(be.Errs[2], &bld) {
		t.Fatalf("panic not turned into *BuildError: %v", be.Errs[2])
	}
	if res[0].Seq != 0 || res[4].Seq != 1 || j.Size() != 2 {
		t.Fatalf("good entries: %+v, size %d", res, j.Size())
	}
	r1, _ := j.Record(1)
	if err := checkEmbedded(1, r1, res[0].Leaf); err != nil {
		t.Fatal(err)
	}
	// A lone failing Append gets no seq either.
	if _, err := j.Append(ctx, Entry{Build: func(uint64, [32]byte) ([]byte, error) { return nil, boom }}); !errors.Is(err, boom) || !errors.As(err, &bld) {
		t.Fatalf("append with failing build: %v", err)
	}
	a, err := j.Append(ctx, Entry{Build: build("ok2")})
	if err != nil || a.Seq != 2 {
		t.Fatalf("append after failure: %+v %v", a, err)
	}
	if err := j.Scrub(ctx, checkEmbedded); err != nil {
		t.Fatal(err)
	}
}

// blockSequencer appends an entry whose Build waits for release, and
// returns once the sequencer is inside it.
func blockSequencer(t *testing.T, j *Journal) (release func(), done <-chan error) {
	t.Helper()
	in, out := make(chan struct{}), make(chan struct{})
	errc := make(chan error, 1)
	go func() {
		_, err := j.Append(context.Background(), Entry{Build: func(seq uint64, prev [32]byte) ([]byte, error) {
			close(in)
			<-out
			return build("blocker")(seq, prev)
		}})
		errc <- err
	}()
	<-in
	return func() { close(out) }, errc
}

func waitPending(t *testing.T, j *Journal, n int) {
	t.Helper()
	for range 10000 {
		j.qmu.Lock()
		p := j.pending
		j.qmu.Unlock()
		if p == n {
			return
		}
		time.Sleep(time.Millisecond)
	}
	t.Fatalf("queue never reached %d entries", n)
}

func TestBusyAndCancel(t *testing.T) {
	ctx := context.Background()
	j := openT(t, t.TempDir(), func(o *Options) { o.MaxQueue = 4 })
	defer j.Close()
	release, blocked := blockSequencer(t, j)

	var wg sync.WaitGroup
	errc := make(chan error, 8)
	for i := range 3 {
		wg.Go(func() {
			_, err := j.Append(ctx, Entry{Build: build(fmt.Sprint("q", i))})
			errc <- err
		})
	}
	cctx, cancel := context.WithCancel(ctx)
	cancelledBuilt := make(chan struct{}, 1)
	cancelled := make(chan error, 1)
	go func() {
		_, err := j.Append(cctx, Entry{Build: func(seq uint64, prev [32]byte) ([]byte, error) {
			cancelledBuilt <- struct{}{}
			return build("cancelled")(seq, prev)
		}})
		cancelled <- err
	}()
	waitPending(t, j, 4)

	_, err := j.Append(ctx, Entry{Build: build("over")})
	var be *BusyError
	if !errors.As(err, &be) || be.Limit != 4 || be.Pending != 4 {
		t.Fatalf("append over the bound: %v, want *BusyError", err)
	}
	if _, err := j.AppendBatch(ctx, []Entry{{Build: build("x")}, {Build: build("y")}}); !errors.As(err, &be) {
		t.Fatalf("batch over the bound: %v, want *BusyError", err)
	}

	cancel()
	if err := <-cancelled; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled while queued: %v", err)
	}
	waitPending(t, j, 3)
	release()
	if err := <-blocked; err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		if err != nil {
			t.Fatal(err)
		}
	}
	select {
	case <-cancelledBuilt:
		t.Fatal("a cancelled entry was built")
	default:
	}
	if j.Size() != 4 {
		t.Fatalf("size %d, want 4 (blocker + 3 queued)", j.Size())
	}
	// The queue is free again.
	if _, err := j.Append(ctx, Entry{Build: build("after")}); err != nil {
		t.Fatal(err)
	}
}

func TestCommitFailurePoisonsAndReopens(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	j := openT(t, dir)
	appendN(t, j, 5, "before")
	size, last := j.Size(), j.LastLeaf()

	disk := errors.New("disk on fire")
	j.commitHook = func() error { return disk }
	_, err := j.AppendBatch(ctx, []Entry{{Build: build("x")}, {Build: build("y")}})
	if !errors.Is(err, ErrFailed) || !errors.Is(err, disk) {
		t.Fatalf("failed commit: %v", err)
	}
	if j.Size() != size || j.LastLeaf() != last {
		t.Fatalf("state moved on a failed commit: size %d", j.Size())
	}
	select {
	case <-j.Failed():
	default:
		t.Fatal("Failed not closed after a failed commit")
	}
	if !errors.Is(j.Err(), ErrFailed) || !errors.Is(j.Err(), disk) {
		t.Fatalf("Err after a failed commit: %v", j.Err())
	}
	if _, err := j.Append(ctx, Entry{Build: build("z")}); !errors.Is(err, ErrFailed) {
		t.Fatalf("append after failure: %v", err)
	}
	if _, err := j.Record(size); !errors.Is(err, ErrNotFound) {
		t.Fatalf("half-applied record visible: %v", err)
	}
	j.Close()

	j = openT(t, dir)
	defer j.Close()
	if j.Size() != size || j.LastLeaf() != last {
		t.Fatalf("reopen after failed commit: size %d", j.Size())
	}
	if a, err := j.Append(ctx, Entry{Build: build("again")}); err != nil || a.Seq != size {
		t.Fatalf("append after reopen: %+v %v", a, err)
	}
	if err := j.Scrub(ctx, checkEmbedded); err != nil {
		t.Fatal(err)
	}
}

func TestTooLargeConsumesNoSeq(t *testing.T) {
	ctx := context.Background()
	j := openT(t, t.TempDir(), func(o *Options) { o.MemTableSize = 1 << 20; o.MaxBatch = 2000 })
	defer j.Close()
	// Records go to the value log; what bounds a commit is Badger's
	// per-transaction accounting of keys, pointers and entries (15% of
	// the 1 MiB memtable), which 2000 records exceed.
	big := make([]Entry, 2000)
	for i := range big {
		big[i] = Entry{Build: func(seq uint64, prev [32]byte) ([]byte, error) {
			return fmt.Appendf(nil, `{"seq":%d,"prev":"%x","body":"%01000d"}`, seq, prev, i), nil
		}}
	}
	_, err := j.AppendBatch(ctx, big)
	var tl *TooLargeError
	if !errors.As(err, &tl) {
		t.Fatalf("oversized batch: %v, want *TooLargeError", err)
	}
	if j.Size() != 0 {
		t.Fatalf("size %d after refused batch", j.Size())
	}
	// Many small appends still spread over several commits.
	res, err := j.AppendBatch(ctx, big[:100])
	if err != nil || res[0].Seq != 0 || res[99].Seq != 99 {
		t.Fatalf("batch that fits: %v", err)
	}
	// 1499 single appends queued behind a blocker form one batch that
	// must be split over several transactions.
	release, blocked := blockSequencer(t, j)
	var wg sync.WaitGroup
	for i := range 1499 {
		wg.Go(func() {
			if _, err := j.Append(ctx, big[i]); err != nil {
				t.Error(err)
			}
		})
	}
	waitPending(t, j, 1499)
	commits := 0
	j.commitHook = func() error { commits++; return nil }
	release()
	if err := <-blocked; err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if j.Size() != 1600 {
		t.Fatalf("size %d, want 1600", j.Size())
	}
	if commits < 3 { // the blocker's commit, then at least two for the batch
		t.Fatalf("%d commits for 1499 records, want the batch split", commits)
	}
	if err := j.Scrub(ctx, checkEmbedded); err != nil {
		t.Fatal(err)
	}
}

// TestTooLargeFit: a batch over one commit is refused as soon as an
// entry takes it over (Build is not called for the entries after it),
// Fit says how many leading entries fit, and they do fit; the refusal
// left no key or payload behind (the same entries then append).
func TestTooLargeFit(t *testing.T) {
	ctx := context.Background()
	j := openT(t, t.TempDir(), func(o *Options) { o.MemTableSize = 1 << 20; o.MaxBatch = 4000 })
	defer j.Close()
	var builds atomic.Int64
	big := make([]Entry, 4000)
	for i := range big {
		p := fmt.Appendf(nil, "payload %d", i)
		big[i] = Entry{
			Build: func(seq uint64, prev [32]byte) ([]byte, error) {
				builds.Add(1)
				return fmt.Appendf(nil, `{"seq":%d,"prev":"%x","body":"%01000d"}`, seq, prev, i), nil
			},
			Key:      fmt.Appendf(nil, "export/fit/%d", i),
			Payloads: []Payload{{Digest: sha256.Sum256(p), Data: p}},
		}
	}
	_, err := j.AppendBatch(ctx, big)
	var tl *TooLargeError
	if !errors.As(err, &tl) {
		t.Fatalf("oversized batch: %v, want *TooLargeError", err)
	}
	if tl.Fit <= 0 || tl.Fit >= len(big) {
		t.Fatalf("Fit %d of %d", tl.Fit, len(big))
	}
	if got := builds.Load(); got != int64(tl.Fit)+1 {
		t.Fatalf("refused batch built %d records, want Fit+1 = %d", got, tl.Fit+1)
	}
	if j.Size() != 0 {
		t.Fatalf("size %d after refused batch", j.Size())
	}
	res, err := j.AppendBatch(ctx, big[:tl.Fit])
	if err != nil || len(res) != tl.Fit || res[tl.Fit-1].Seq != uint64(tl.Fit-1) {
		t.Fatalf("the %d entries that fit: %v", tl.Fit, err)
	}
	for i := range tl.Fit {
		if p, err := j.Payload(big[i].Payloads[0].Digest); err != nil || !bytes.Equal(p, big[i].Payloads[0].Data) {
			t.Fatalf("payload %d: %v", i, err)
		}
	}
	// The first entry that did not fit was undone completely: its key
	// is free and its payload is written with it.
	a, err := j.Append(ctx, big[tl.Fit])
	if err != nil || a.Seq != uint64(tl.Fit) {
		t.Fatalf("entry %d after the refusal: seq %d %v", tl.Fit, a.Seq, err)
	}
	if p, err := j.Payload(big[tl.Fit].Payloads[0].Digest); err != nil || !bytes.Equal(p, big[tl.Fit].Payloads[0].Data) {
		t.Fatalf("payload of entry %d: %v", tl.Fit, err)
	}
	if err := j.Scrub(ctx, nil); err != nil {
		t.Fatal(err)
	}
}
