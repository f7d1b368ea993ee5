package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"testing"

	"github.com/dgraph-io/badger/v4"
)

// keyVersions counts the live versions Badger holds of stored key k: 1
// when it was written once, whatever was appended since.
func keyVersions(t *testing.T, j *Journal, k []byte) int {
	t.Helper()
	n := 0
	err := j.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{AllVersions: true, Prefix: k})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			if bytes.Equal(it.Item().Key(), k) && !it.Item().IsDeletedOrExpired() {
				n++
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func splitEntry(body string, p Payload) Entry {
	return Entry{Build: build(body), Payloads: []Payload{p}}
}

// TestSplitPayloadFilterDedup: the payload filter never says "absent"
// for a payload stored split, so a repeated encrypted export (the same
// bytes, split from its window's prefix) is stored once: appended again
// in the same run, after a reopen before the filter's scan is done (every
// lookup reads Badger) and after it (the scan of the split keys put it in
// the filter: "maybe", and one read of its split key settles it). A new
// payload of the same window after the scan takes no payload read, and
// the window's prefix stays stored once. Plain and encrypted (the keys
// are HMACs then).
func TestSplitPayloadFilterDedup(t *testing.T) {
	for _, enc := range []bool{false, true} {
		t.Run(fmt.Sprintf("encrypted=%v", enc), func(t *testing.T) {
			ctx := context.Background()
			dir := t.TempDir()
			var key []byte
			if enc {
				key = bytes.Repeat([]byte{5}, 32)
			}
			open := func() *Journal { return openT(t, dir, func(o *Options) { o.EncryptionKey = key }) }
			p, prefix := splitFile(3, 0)
			prefixID := sha256.Sum256(prefix)
			storedOnce := func(j *Journal, q Payload, when string) {
				t.Helper()
				if n := keyVersions(t, j, j.c.digestKey(pfxSplit, q.Digest)); n != 1 {
					t.Fatalf("%s: split payload written %d times, want 1", when, n)
				}
				if n := payloadVersions(t, j, q.Digest); n != 0 {
					t.Fatalf("%s: payload also written whole (%d times)", when, n)
				}
				if n := keyVersions(t, j, j.c.digestKey(pfxPrefix, prefixID)); n != 1 {
					t.Fatalf("%s: prefix written %d times, want 1", when, n)
				}
				if got, err := j.Payload(q.Digest); err != nil || !bytes.Equal(got, q.Data) {
					t.Fatalf("%s: payload reads %d bytes, %v; want its %d bytes", when, len(got), err, len(q.Data))
				}
			}
			maybe := func(j *Journal, when string) {
				t.Helper()
				if !j.filter.ready.Load() {
					t.Fatalf("%s: filter not ready after its scan", when)
				}
				if j.filter.absent(j.c.digestKey(pfxPayload, p.Digest)) {
					t.Fatalf("%s: filter says a payload stored split is absent", when)
				}
			}

			j := open()
			<-j.filterDone
			if _, err := j.AppendBatch(ctx, []Entry{splitEntry("1", p), splitEntry("2", p)}); err != nil {
				t.Fatal(err)
			}
			if _, err := j.Append(ctx, splitEntry("3", p)); err != nil {
				t.Fatal(err)
			}
			storedOnce(j, p, "one run")
			maybe(j, "one run")
			if err := j.Close(); err != nil {
				t.Fatal(err)
			}

			// Reopened: at once (the scan may still run), then as before
			// its scan is done (the filter not trusted: the lookup reads
			// Badger), whatever the scheduler did.
			j = open()
			if _, err := j.Append(ctx, splitEntry("4", p)); err != nil {
				t.Fatal(err)
			}
			<-j.filterDone
			j.filter.ready.Store(false)
			reads := j.payloadReads.Load()
			if _, err := j.Append(ctx, splitEntry("5", p)); err != nil {
				t.Fatal(err)
			}
			if got := j.payloadReads.Load() - reads; got != 1 {
				t.Fatalf("before the scan: %d Badger lookups, want 1", got)
			}
			j.filter.ready.Store(true)
			storedOnce(j, p, "reopened, before the scan")
			if err := j.Close(); err != nil {
				t.Fatal(err)
			}

			// Reopened, after the scan and before any append: only the
			// scan can have put the payload in the filter.
			j = open()
			defer j.Close()
			<-j.filterDone
			maybe(j, "reopened, after the scan")
			reads = j.payloadReads.Load()
			if _, err := j.Append(ctx, splitEntry("6", p)); err != nil {
				t.Fatal(err)
			}
			if got := j.payloadReads.Load() - reads; got != 1 {
				t.Fatalf("after the scan: %d Badger lookups, want 1 (the split key)", got)
			}
			storedOnce(j, p, "reopened, after the scan")

			// A new payload of the same window: "absent" without a read,
			// stored split against the prefix already stored.
			q, _ := splitFile(3, 1)
			reads = j.payloadReads.Load()
			if _, err := j.Append(ctx, splitEntry("7", q)); err != nil {
				t.Fatal(err)
			}
			if got := j.payloadReads.Load() - reads; got != 0 {
				t.Fatalf("new payload: %d Badger lookups, want 0", got)
			}
			storedOnce(j, q, "new payload")
			if err := j.Scrub(ctx, nil); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestTooLargeFitUndoesPrefix: a batch refused for its size (Fit) after
// an entry that wrote a new payload prefix leaves no trace of it in the
// sequencer's view: a request built right after it, in the same view,
// with a payload of that prefix writes the prefix, and its payload reads
// back (not "prefix missing").
func TestTooLargeFitUndoesPrefix(t *testing.T) {
	ctx := context.Background()
	j := openT(t, t.TempDir(), func(o *Options) { o.MemTableSize = 1 << 20 })
	defer j.Close()
	p0, prefix := splitFile(7, 0)
	p1, _ := splitFile(7, 1)
	// Entry 1 of the refused batch goes over the commit's count and
	// bytes with many small payloads.
	many := make([]Payload, 3000)
	for i := range many {
		d := fmt.Appendf(nil, "small payload %d", i)
		many[i] = Payload{Digest: sha256.Sum256(d), Data: d}
	}
	refused := []Entry{splitEntry("refused 0", p0), {Build: build("refused 1"), Payloads: many}}

	// Both requests queued behind a blocked sequencer are taken and
	// built together, in one view.
	release, blocked := blockSequencer(t, j)
	errc := make(chan error, 2)
	go func() {
		_, err := j.AppendBatch(ctx, refused)
		errc <- err
	}()
	waitPending(t, j, len(refused))
	go func() {
		_, err := j.Append(ctx, splitEntry("after", p1))
		errc <- err
	}()
	waitPending(t, j, len(refused)+1)
	release()
	if err := <-blocked; err != nil {
		t.Fatal(err)
	}
	var tl *TooLargeError
	for range 2 {
		err := <-errc
		if errors.As(err, &tl) {
			if tl.Fit != 1 {
				t.Fatalf("Fit %d, want 1", tl.Fit)
			}
			continue
		}
		if err != nil {
			t.Fatalf("append after the refused batch: %v", err)
		}
	}
	if tl == nil {
		t.Fatal("oversized batch not refused")
	}
	if got, err := j.Payload(p1.Digest); err != nil || !bytes.Equal(got, p1.Data) {
		t.Fatalf("payload after the refused batch: %d bytes, %v", len(got), err)
	}
	if n := keyVersions(t, j, j.c.digestKey(pfxPrefix, sha256.Sum256(prefix))); n != 1 {
		t.Fatalf("prefix written %d times, want 1", n)
	}
	if _, err := j.Payload(p0.Digest); !errors.Is(err, ErrNotFound) {
		t.Fatalf("payload of the refused batch: %v, want ErrNotFound", err)
	}
	if err := j.Scrub(ctx, nil); err != nil {
		t.Fatal(err)
	}
}
