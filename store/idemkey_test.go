package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
)

// mustNotBuild fails the test if the sequencer builds the entry.
func mustNotBuild(t *testing.T) func(uint64, [32]byte) ([]byte, error) {
	return func(seq uint64, prev [32]byte) ([]byte, error) {
		t.Errorf("Build called for a duplicate (seq %d)", seq)
		return build("dup")(seq, prev)
	}
}

func wantDuplicate(t *testing.T, err error, key string, seq uint64) {
	t.Helper()
	var de *DuplicateError
	if !errors.As(err, &de) {
		t.Fatalf("err = %v, want *DuplicateError", err)
	}
	if string(de.Key) != key || de.Seq != seq {
		t.Fatalf("DuplicateError{Key: %q, Seq: %d}, want {%q, %d}", de.Key, de.Seq, key, seq)
	}
}

func TestKeyDuplicateAcrossCommits(t *testing.T) {
	ctx := context.Background()
	j := openT(t, t.TempDir())
	defer j.Close()
	appendN(t, j, 3, "pre")

	a, err := j.Append(ctx, Entry{Build: build("export-1"), Key: []byte("export-1")})
	if err != nil || a.Seq != 3 {
		t.Fatalf("first append: %+v %v", a, err)
	}
	_, err = j.Append(ctx, Entry{Build: mustNotBuild(t), Key: []byte("export-1")})
	wantDuplicate(t, err, "export-1", 3)
	if j.Size() != 4 {
		t.Fatalf("size %d after a duplicate, want 4", j.Size())
	}
	// The duplicate used no sequence number.
	b, err := j.Append(ctx, Entry{Build: build("export-2"), Key: []byte("export-2")})
	if err != nil || b.Seq != 4 {
		t.Fatalf("append after duplicate: %+v %v", b, err)
	}
	// An unkeyed entry (nil or empty key) is never a duplicate.
	for _, k := range [][]byte{nil, {}, nil} {
		if _, err := j.Append(ctx, Entry{Build: build("unkeyed"), Key: k}); err != nil {
			t.Fatalf("unkeyed append: %v", err)
		}
	}
	// A duplicate in a later batch shows up at its position.
	res, err := j.AppendBatch(ctx, []Entry{{Build: build("x")}, {Build: mustNotBuild(t), Key: []byte("export-2")}, {Build: build("y")}})
	var be *BatchError
	if !errors.As(err, &be) || be.Errs[0] != nil || be.Errs[2] != nil {
		t.Fatalf("batch with committed duplicate: %v", err)
	}
	wantDuplicate(t, be.Errs[1], "export-2", 4)
	if res[0].Seq != 8 || res[2].Seq != 9 || j.Size() != 10 {
		t.Fatalf("batch results %+v, size %d", res, j.Size())
	}
	if err := j.Scrub(ctx, checkEmbedded); err != nil {
		t.Fatal(err)
	}
}

func TestKeyDuplicateWithinBatch(t *testing.T) {
	ctx := context.Background()
	j := openT(t, t.TempDir())
	defer j.Close()
	res, err := j.AppendBatch(ctx, []Entry{
		{Build: build("k1"), Key: []byte("k1")},
		{Build: build("k2"), Key: []byte("k2")},
		{Build: mustNotBuild(t), Key: []byte("k1")},
		{Build: build("none")},
		{Build: mustNotBuild(t), Key: []byte("k2")},
		{Build: build("k3"), Key: []byte("k3")},
		{Build: mustNotBuild(t), Key: []byte("k3")},
	})
	var be *BatchError
	if !errors.As(err, &be) || len(be.Errs) != 7 {
		t.Fatalf("batch: %v, want *BatchError", err)
	}
	for i, e := range be.Errs {
		if (e != nil) != (i == 2 || i == 4 || i == 6) {
			t.Fatalf("entry %d: %v", i, e)
		}
	}
	wantDuplicate(t, be.Errs[2], "k1", 0)
	wantDuplicate(t, be.Errs[4], "k2", 1)
	wantDuplicate(t, be.Errs[6], "k3", 3)
	if res[0].Seq != 0 || res[1].Seq != 1 || res[3].Seq != 2 || res[5].Seq != 3 || j.Size() != 4 {
		t.Fatalf("results %+v, size %d", res, j.Size())
	}
	for k, want := range map[string]uint64{"k1": 0, "k2": 1, "k3": 3} {
		if seq, err := j.Lookup([]byte(k)); err != nil || seq != want {
			t.Fatalf("Lookup(%s) = %d, %v; want %d", k, seq, err, want)
		}
	}
	if err := j.Scrub(ctx, checkEmbedded); err != nil {
		t.Fatal(err)
	}
}

// Same key from 32 goroutines, once freely and once all queued into one
// group commit behind a blocked sequencer.
func TestKeyConcurrentSameKey(t *testing.T) {
	ctx := context.Background()
	j := openT(t, t.TempDir())
	defer j.Close()
	for round, blocked := range []bool{false, true} {
		key := fmt.Sprintf("same-%d", round)
		var release func()
		var blockErr <-chan error
		if blocked {
			release, blockErr = blockSequencer(t, j)
		}
		before := j.Size()
		type result struct {
			a   Appended
			err error
		}
		results := make([]result, 32)
		var wg sync.WaitGroup
		for g := range results {
			wg.Go(func() {
				a, err := j.Append(ctx, Entry{Build: build(fmt.Sprint(key, "-g", g)), Key: []byte(key)})
				var de *DuplicateError
				if errors.As(err, &de) {
					// The original is acknowledged by the time the
					// duplicate is answered.
					if seq, lerr := j.Lookup([]byte(key)); lerr != nil || seq != de.Seq {
						t.Errorf("Lookup right after DuplicateError: %d %v, want %d", seq, lerr, de.Seq)
					}
				}
				results[g] = result{a, err}
			})
		}
		if blocked {
			waitPending(t, j, 32)
			release()
			if err := <-blockErr; err != nil {
				t.Fatal(err)
			}
			before++ // the blocker's record
		}
		wg.Wait()
		winners := 0
		var seq uint64
		for _, r := range results {
			if r.err == nil {
				winners++
				seq = r.a.Seq
			}
		}
		if winners != 1 {
			t.Fatalf("round %d: %d appends succeeded, want exactly 1", round, winners)
		}
		for g, r := range results {
			if r.err != nil {
				wantDuplicate(t, r.err, key, seq)
			} else if r.a.Size <= seq {
				t.Fatalf("goroutine %d: receipt %+v", g, r.a)
			}
		}
		if j.Size() != before+1 || seq != before {
			t.Fatalf("round %d: size %d, winner seq %d, want size %d", round, j.Size(), seq, before+1)
		}
		if got, err := j.Lookup([]byte(key)); err != nil || got != seq {
			t.Fatalf("Lookup = %d, %v; want %d", got, err, seq)
		}
	}
	if err := j.Scrub(ctx, checkEmbedded); err != nil {
		t.Fatal(err)
	}
}

func TestKeyLookupAndLimits(t *testing.T) {
	ctx := context.Background()
	j := openT(t, t.TempDir())
	defer j.Close()
	if _, err := j.Lookup([]byte("absent")); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Lookup absent: %v", err)
	}
	if _, err := j.Lookup(nil); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Lookup empty: %v", err)
	}
	long := bytes.Repeat([]byte{0xff}, MaxKeyLen+1)
	var tl *KeyTooLongError
	if _, err := j.Lookup(long); !errors.As(err, &tl) || tl.Len != MaxKeyLen+1 || tl.Limit != MaxKeyLen {
		t.Fatalf("Lookup long key: %v", err)
	}
	if _, err := j.Append(ctx, Entry{Build: mustNotBuild(t), Key: long}); !errors.As(err, &tl) {
		t.Fatalf("Append long key: %v", err)
	}
	if _, err := j.AppendBatch(ctx, []Entry{{Build: mustNotBuild(t)}, {Build: mustNotBuild(t), Key: long}}); !errors.As(err, &tl) {
		t.Fatalf("AppendBatch long key: %v", err)
	}
	if j.Size() != 0 {
		t.Fatalf("size %d after refused long keys", j.Size())
	}
	// Binary keys of the maximum length work; keys are exact bytes, not
	// prefixes.
	maxKey := bytes.Repeat([]byte{0, 'k', 0xff}, MaxKeyLen/3+1)[:MaxKeyLen]
	a, err := j.Append(ctx, Entry{Build: build("max"), Key: maxKey})
	if err != nil {
		t.Fatal(err)
	}
	if seq, err := j.Lookup(maxKey); err != nil || seq != a.Seq {
		t.Fatalf("Lookup max key: %d %v", seq, err)
	}
	if _, err := j.Lookup(maxKey[:MaxKeyLen-1]); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Lookup of a prefix: %v", err)
	}
	// Keys do not collide with other key spaces of the journal.
	if _, err := j.Lookup([]byte{0, 0, 0, 0, 0, 0, 0, 0}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Lookup of a record-like key: %v", err)
	}
	j.Close()
	if _, err := j.Lookup(maxKey); !errors.Is(err, ErrClosed) {
		t.Fatalf("Lookup after close: %v", err)
	}
}

func TestKeyReopenKeepsKeys(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	j := openT(t, dir)
	want := map[string]uint64{}
	for i := range 50 {
		k := fmt.Sprintf("reopen-%d", i)
		a, err := j.Append(ctx, Entry{Build: build(k), Key: []byte(k)})
		if err != nil {
			t.Fatal(err)
		}
		want[k] = a.Seq
	}
	j.Close()
	j = openT(t, dir)
	defer j.Close()
	for k, seq := range want {
		if got, err := j.Lookup([]byte(k)); err != nil || got != seq {
			t.Fatalf("after reopen Lookup(%s) = %d, %v; want %d", k, got, err, seq)
		}
	}
	_, err := j.Append(ctx, Entry{Build: mustNotBuild(t), Key: []byte("reopen-7")})
	wantDuplicate(t, err, "reopen-7", want["reopen-7"])
	if j.Size() != 50 {
		t.Fatalf("size %d", j.Size())
	}
}

// A refused or failed commit leaves no key behind: the key is free again.
func TestKeyNotKeptWithoutRecord(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	j := openT(t, dir, func(o *Options) { o.MemTableSize = 1 << 20; o.MaxBatch = 1000 })
	big := make([]Entry, 2000) // over one commit, see TestTooLargeConsumesNoSeq
	for i := range big {
		big[i] = Entry{Build: func(seq uint64, prev [32]byte) ([]byte, error) {
			return fmt.Appendf(nil, `{"seq":%d,"prev":"%x","body":"%01000d"}`, seq, prev, i), nil
		}}
	}
	big[0].Key = []byte("too-large")
	var tl *TooLargeError
	if _, err := j.AppendBatch(ctx, big); !errors.As(err, &tl) {
		t.Fatalf("oversized batch: %v", err)
	}
	if _, err := j.Lookup([]byte("too-large")); !errors.Is(err, ErrNotFound) {
		t.Fatalf("key of a refused batch: %v", err)
	}
	if a, err := j.Append(ctx, Entry{Build: build("too-large"), Key: []byte("too-large")}); err != nil || a.Seq != 0 {
		t.Fatalf("key reused after refusal: %+v %v", a, err)
	}

	// An original and its in-batch duplicate in a commit that fails: the
	// duplicate must not be told about a seq that never committed.
	release, blocked := blockSequencer(t, j)
	errc := make(chan error, 2)
	go func() {
		_, err := j.Append(ctx, Entry{Build: build("lost"), Key: []byte("lost")})
		errc <- err
	}()
	waitPending(t, j, 1)
	go func() {
		_, err := j.Append(ctx, Entry{Build: mustNotBuild(t), Key: []byte("lost")})
		errc <- err
	}()
	waitPending(t, j, 2)
	commits := 0
	j.commitHook = func() error {
		if commits++; commits > 1 {
			return errors.New("disk on fire")
		}
		return nil
	}
	release()
	if err := <-blocked; err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := <-errc; !errors.Is(err, ErrFailed) {
			t.Fatalf("append in failed commit: %v, want ErrFailed", err)
		}
	}
	size := j.Size()
	j.Close()

	j = openT(t, dir)
	defer j.Close()
	if _, err := j.Lookup([]byte("lost")); !errors.Is(err, ErrNotFound) {
		t.Fatalf("key of a failed commit: %v", err)
	}
	if a, err := j.Append(ctx, Entry{Build: build("lost"), Key: []byte("lost")}); err != nil || a.Seq != size {
		t.Fatalf("key reused after failed commit: %+v %v (size %d)", a, err, size)
	}
	if err := j.Scrub(ctx, checkEmbedded); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains((&DuplicateError{Key: []byte("k"), Seq: 7}).Error(), "seq 7") {
		t.Fatal("DuplicateError text lacks the seq")
	}
}
