package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"testing"
)

// payloadVersions counts the versions Badger holds of the payload with
// digest d: 1 when it was written once, whatever was appended since.
func payloadVersions(t *testing.T, j *Journal, d [32]byte) int {
	t.Helper()
	return keyVersions(t, j, j.c.digestKey(pfxPayload, d))
}

func payloadEntry(body string, data []byte) Entry {
	return Entry{Build: build(body), Payloads: []Payload{{Digest: sha256.Sum256(data), Data: data}}}
}

// TestPayloadFilterDedup: a payload appended again (in the same batch,
// in a later commit, after a reopen before and after the payload
// filter's scan is done) is written once; a new payload after the scan
// is written without a lookup in Badger; a purged one is written again.
// Plain and encrypted (payload keys are HMACs then).
func TestPayloadFilterDedup(t *testing.T) {
	for _, enc := range []bool{false, true} {
		t.Run(fmt.Sprintf("encrypted=%v", enc), func(t *testing.T) {
			ctx := context.Background()
			dir := t.TempDir()
			var key []byte
			if enc {
				key = bytes.Repeat([]byte{7}, 32)
			}
			open := func() *Journal { return openT(t, dir, func(o *Options) { o.EncryptionKey = key }) }
			data := []byte("repeated export payload")
			d := sha256.Sum256(data)
			j := open()
			<-j.filterDone
			if !j.filter.ready.Load() {
				t.Fatal("filter not ready after its scan")
			}
			if _, err := j.AppendBatch(ctx, []Entry{payloadEntry("1", data), payloadEntry("2", data)}); err != nil {
				t.Fatal(err)
			}
			if _, err := j.Append(ctx, payloadEntry("3", data)); err != nil {
				t.Fatal(err)
			}
			if n := payloadVersions(t, j, d); n != 1 {
				t.Fatalf("payload written %d times in one run, want 1", n)
			}
			if err := j.Close(); err != nil {
				t.Fatal(err)
			}

			// Reopened: at once (the scan may still run: lookups read
			// Badger) and once the scan is done (the filter holds it).
			j = open()
			if _, err := j.Append(ctx, payloadEntry("4", data)); err != nil {
				t.Fatal(err)
			}
			<-j.filterDone
			if !j.filter.ready.Load() {
				t.Fatal("filter not ready after its scan")
			}
			if j.filter.absent(j.c.digestKey(pfxPayload, d)) {
				t.Fatal("filter says a stored payload is absent")
			}
			if _, err := j.Append(ctx, payloadEntry("5", data)); err != nil {
				t.Fatal(err)
			}
			if n := payloadVersions(t, j, d); n != 1 {
				t.Fatalf("payload written %d times across a restart, want 1", n)
			}

			// A new payload: no Badger lookup, written once, readable.
			reads := j.payloadReads.Load()
			fresh := []byte("a payload never seen")
			if _, err := j.Append(ctx, payloadEntry("6", fresh)); err != nil {
				t.Fatal(err)
			}
			if got := j.payloadReads.Load() - reads; got != 0 {
				t.Fatalf("new payload took %d Badger lookups, want 0", got)
			}
			if p, err := j.Payload(sha256.Sum256(fresh)); err != nil || !bytes.Equal(p, fresh) {
				t.Fatalf("new payload: %q %v", p, err)
			}

			// Purged, then appended again: the filter still holds it, the
			// lookup finds it absent, it is stored again.
			if err := j.PurgePayload(ctx, d); err != nil {
				t.Fatal(err)
			}
			if _, err := j.Append(ctx, payloadEntry("7", data)); err != nil {
				t.Fatal(err)
			}
			if p, err := j.Payload(d); err != nil || !bytes.Equal(p, data) {
				t.Fatalf("payload stored again after a purge: %q %v", p, err)
			}
			if err := j.Scrub(ctx, nil); err != nil {
				t.Fatal(err)
			}
			if err := j.Close(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestIdemKeyFilterDedup: an idempotency key journaled before is a
// duplicate (with its original seq) in a later commit and after a reopen,
// before and after the key filter's scan is done; a new key after the
// scan is journaled without a lookup in Badger. Plain (keys hashed for
// the filter) and encrypted (HMAC keys probed as they are).
func TestIdemKeyFilterDedup(t *testing.T) {
	for _, enc := range []bool{false, true} {
		t.Run(fmt.Sprintf("encrypted=%v", enc), func(t *testing.T) {
			ctx := context.Background()
			dir := t.TempDir()
			var key []byte
			if enc {
				key = bytes.Repeat([]byte{9}, 32)
			}
			open := func() *Journal { return openT(t, dir, func(o *Options) { o.EncryptionKey = key }) }
			k := []byte("export/alice/order-1")
			dupOf := func(j *Journal, body string) uint64 {
				t.Helper()
				_, err := j.Append(ctx, Entry{Build: build(body), Key: k})
				var de *DuplicateError
				if !errors.As(err, &de) {
					t.Fatalf("repeat of a journaled key: %v, want *DuplicateError", err)
				}
				return de.Seq
			}
			j := open()
			<-j.filterDone
			appendN(t, j, 3, "before")
			a, err := j.Append(ctx, Entry{Build: build("first"), Key: k})
			if err != nil {
				t.Fatal(err)
			}
			if got := dupOf(j, "same run"); got != a.Seq {
				t.Fatalf("duplicate names seq %d, want %d", got, a.Seq)
			}
			if err := j.Close(); err != nil {
				t.Fatal(err)
			}
			j = open()
			defer j.Close()
			if got := dupOf(j, "reopened"); got != a.Seq {
				t.Fatalf("after reopen: duplicate names seq %d, want %d", got, a.Seq)
			}
			<-j.filterDone
			if !j.keyFilter.ready.Load() {
				t.Fatal("key filter not ready after its scan")
			}
			if j.keyFilter.absent(j.c.idemKey(k)) {
				t.Fatal("key filter says a journaled key is absent")
			}
			if got := dupOf(j, "scanned"); got != a.Seq {
				t.Fatalf("after the scan: duplicate names seq %d, want %d", got, a.Seq)
			}
			reads := j.keyReads.Load()
			if _, err := j.Append(ctx, Entry{Build: build("new"), Key: []byte("export/alice/order-2")}); err != nil {
				t.Fatal(err)
			}
			if got := j.keyReads.Load() - reads; got != 0 {
				t.Fatalf("new key took %d Badger lookups, want 0", got)
			}
			if seq, err := j.Lookup([]byte("export/alice/order-2")); err != nil || seq != a.Seq+1 {
				t.Fatalf("new key: seq %d %v, want %d", seq, err, a.Seq+1)
			}
		})
	}
}

// TestDigestFilter: never "absent" before the scan is done nor for a key
// added; "absent" for nearly every key not added; keys probed as they
// are and hashed.
func TestDigestFilter(t *testing.T) {
	for _, direct := range []bool{true, false} {
		f := newDigestFilter(filterMinBits, direct)
		key := func(i int) []byte {
			if !direct {
				return fmt.Appendf(nil, "k export/p/%d", i)
			}
			d := sha256.Sum256(fmt.Appendf(nil, "%d", i))
			return append([]byte{pfxPayload}, d[:]...)
		}
		f.add(key(0))
		if f.absent(key(1)) {
			t.Fatal("absent before the scan is done")
		}
		f.ready.Store(true)
		const n = 100000
		for i := range n {
			f.add(key(i))
		}
		for i := range n {
			if f.absent(key(i)) {
				t.Fatalf("direct=%v: key %d added but absent", direct, i)
			}
		}
		fp := 0
		for i := n; i < 2*n; i++ {
			if !f.absent(key(i)) {
				fp++
			}
		}
		if fp > n/50 {
			t.Fatalf("direct=%v: %d false positives in %d, want under 2%%", direct, fp, n)
		}
	}
	for _, c := range []struct{ size, want uint64 }{{0, filterMinBits}, {1 << 20, 1 << 25}, {1 << 40, filterMaxBits}} {
		if got := filterBits(c.size); got != c.want {
			t.Fatalf("filterBits(%d) = %d, want %d", c.size, got, c.want)
		}
	}
}

// TestKeyFilterScanClose: Close right after Open, while the key filters'
// scan runs, returns (the scan stops, and is out of Badger before Badger
// closes); the next Open's scan completes.
func TestKeyFilterScanClose(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	j := openT(t, dir)
	es := make([]Entry, 300)
	for i := range es {
		es[i] = payloadEntry(fmt.Sprint(i), fmt.Appendf(nil, "payload %d", i))
		es[i].Key = fmt.Appendf(nil, "k/%d", i)
	}
	for range 20 {
		for i := range es {
			es[i].Payloads[0].Data = append(es[i].Payloads[0].Data, '.')
			es[i].Payloads[0].Digest = sha256.Sum256(es[i].Payloads[0].Data)
			es[i].Key = append(es[i].Key, '.')
		}
		if _, err := j.AppendBatch(ctx, es); err != nil {
			t.Fatal(err)
		}
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	j = openT(t, dir)
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-j.filterDone:
	default:
		t.Fatal("Close returned before the scan ended")
	}
	j = openT(t, dir)
	defer j.Close()
	<-j.filterDone
	if !j.filter.ready.Load() || !j.keyFilter.ready.Load() {
		t.Fatal("filters not ready after a complete scan")
	}
	if j.keyFilter.absent(j.c.idemKey(es[0].Key)) || j.filter.absent(j.c.digestKey(pfxPayload, es[0].Payloads[0].Digest)) {
		t.Fatal("a stored key is absent from its filter")
	}
}
