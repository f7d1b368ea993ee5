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

// splitFile is a payload shaped like a payload cipher version 2 file: a
// window's shared prefix (1120 bytes, as the encapsulated key of
// ML-KEM-768+X25519) followed by bytes of its own.
func splitFile(window, i int) (Payload, []byte) {
	prefix := bytes.Repeat(fmt.Appendf(nil, "window %04d ", window), 1120/12+1)[:1120]
	rest := fmt.Appendf(nil, "ciphertext %d of window %d", i, window)
	rest = append(rest, bytes.Repeat([]byte{byte(i)}, 1040-len(rest))...)
	data := append(bytes.Clone(prefix), rest...)
	return Payload{Digest: sha256.Sum256(data), Data: data, Prefix: len(prefix)}, prefix
}

// rawGet reads key's opened value straight from Badger.
func rawGet(t *testing.T, j *Journal, key []byte) ([]byte, error) {
	t.Helper()
	var v []byte
	err := j.db.View(func(txn *badger.Txn) error {
		var err error
		v, err = j.c.get(txn, key)
		return err
	})
	return v, err
}

// A payload journaled with a shared prefix reads back as the exact
// bytes handed in, before and after a reopen, plain and sealed at rest;
// on disk it is its own bytes and a reference, and each prefix is stored
// once, whatever the number of payloads (and commits) sharing it.
func TestSplitPayloadRoundTrip(t *testing.T) {
	for _, key := range [][]byte{nil, bytes.Repeat([]byte{7}, 32)} {
		t.Run(fmt.Sprintf("sealed=%v", key != nil), func(t *testing.T) {
			ctx := context.Background()
			dir := t.TempDir()
			open := func() *Journal { return openT(t, dir, func(o *Options) { o.EncryptionKey = key }) }
			j := open()
			var ps []Payload
			prefixes := map[[32]byte][]byte{}
			for i := range 12 {
				p, prefix := splitFile(i/5, i) // windows 0, 1, 2
				prefixes[sha256.Sum256(prefix)] = prefix
				ps = append(ps, p)
			}
			// Singly (a commit each) and as one batch (one commit).
			for i, p := range ps[:6] {
				if _, err := j.Append(ctx, Entry{Build: build(fmt.Sprint("e", i)), Payloads: []Payload{p}}); err != nil {
					t.Fatal(err)
				}
			}
			var es []Entry
			for i, p := range ps[6:] {
				es = append(es, Entry{Build: build(fmt.Sprint("b", i)), Payloads: []Payload{p}})
			}
			if _, err := j.AppendBatch(ctx, es); err != nil {
				t.Fatal(err)
			}
			whole := []byte("a payload in the clear, journaled whole")
			wd := sha256.Sum256(whole)
			if _, err := j.Append(ctx, Entry{Build: build("whole"), Payloads: []Payload{{Digest: wd, Data: whole}}}); err != nil {
				t.Fatal(err)
			}
			check := func(j *Journal) {
				t.Helper()
				for i, p := range ps {
					got, err := j.Payload(p.Digest)
					if err != nil || !bytes.Equal(got, p.Data) {
						t.Fatalf("payload %d: %d bytes, %v; want its %d bytes", i, len(got), err, len(p.Data))
					}
					if present, purged, err := j.PayloadState(p.Digest); !present || purged || err != nil {
						t.Fatalf("payload %d state: %v %v %v", i, present, purged, err)
					}
					if _, err := rawGet(t, j, j.c.digestKey(pfxPayload, p.Digest)); !errors.Is(err, badger.ErrKeyNotFound) {
						t.Fatalf("payload %d stored whole: %v", i, err)
					}
					v, err := rawGet(t, j, j.c.digestKey(pfxSplit, p.Digest))
					if err != nil || len(v) != splitHeader+len(p.Data)-p.Prefix {
						t.Fatalf("payload %d split value: %d bytes, %v", i, len(v), err)
					}
				}
				if got, err := j.Payload(wd); err != nil || !bytes.Equal(got, whole) {
					t.Fatalf("whole payload: %q %v", got, err)
				}
				if _, err := rawGet(t, j, j.c.digestKey(pfxPayload, wd)); err != nil {
					t.Fatalf("whole payload not stored whole: %v", err)
				}
				n := 0
				err := j.db.View(func(txn *badger.Txn) error {
					it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{pfxPrefix}})
					defer it.Close()
					for it.Rewind(); it.Valid(); it.Next() {
						n++
					}
					return nil
				})
				if err != nil || n != len(prefixes) {
					t.Fatalf("%d prefixes stored (%v), want %d", n, err, len(prefixes))
				}
				for id, prefix := range prefixes {
					if v, err := rawGet(t, j, j.c.digestKey(pfxPrefix, id)); err != nil || !bytes.Equal(v, prefix) {
						t.Fatalf("prefix %x: %v", id[:4], err)
					}
				}
				if err := j.Scrub(ctx, checkEmbedded); err != nil {
					t.Fatal(err)
				}
			}
			check(j)
			// The same bytes again are not stored again.
			if _, err := j.Append(ctx, Entry{Build: build("again"), Payloads: []Payload{ps[0]}}); err != nil {
				t.Fatal(err)
			}
			check(j)
			if err := j.Close(); err != nil {
				t.Fatal(err)
			}
			j = open()
			defer j.Close()
			check(j)
			// After the reopen, the view finds the stored prefix.
			p, _ := splitFile(2, 99)
			if _, err := j.Append(ctx, Entry{Build: build("late"), Payloads: []Payload{p}}); err != nil {
				t.Fatal(err)
			}
			ps = append(ps, p)
			check(j)
		})
	}
}

// A journal written before split payloads (every payload whole) reads its
// payloads as before and takes split ones beside them; purge, payload
// state and scrub work on both shapes.
func TestSplitPayloadBesideOldShape(t *testing.T) {
	ctx := context.Background()
	dir := untar(t, "journal-v2-sealed.tar.gz")
	key := make([]byte, 32)
	for i := range key {
		key[i] = byte(i)
	}
	j := openT(t, dir, func(o *Options) { o.EncryptionKey = key })
	defer j.Close()
	old := func(i int) ([32]byte, []byte) {
		b := fmt.Appendf(nil, "payload %d", i)
		return sha256.Sum256(b), b
	}
	p0, _ := splitFile(0, 0)
	p1, _ := splitFile(0, 1)
	if _, err := j.AppendBatch(ctx, []Entry{{Build: build("s0"), Payloads: []Payload{p0}}, {Build: build("s1"), Payloads: []Payload{p1}}}); err != nil {
		t.Fatal(err)
	}
	for i := range 37 {
		d, b := old(i)
		if got, err := j.Payload(d); err != nil || !bytes.Equal(got, b) {
			t.Fatalf("old payload %d: %q %v", i, got, err)
		}
	}
	for _, p := range []Payload{p0, p1} {
		if got, err := j.Payload(p.Digest); err != nil || !bytes.Equal(got, p.Data) {
			t.Fatalf("split payload: %v", err)
		}
	}
	od, ob := old(4)
	for _, d := range [][32]byte{od, p0.Digest} {
		if err := j.PurgePayload(ctx, d); err != nil {
			t.Fatal(err)
		}
		if _, err := j.Payload(d); !errors.Is(err, ErrPurged) {
			t.Fatalf("after purge: %v, want ErrPurged", err)
		}
		if present, purged, err := j.PayloadState(d); present || !purged || err != nil {
			t.Fatalf("state after purge: %v %v %v", present, purged, err)
		}
		if err := j.PurgePayload(ctx, d); err != nil {
			t.Fatalf("second purge: %v", err)
		}
	}
	if _, err := rawGet(t, j, j.c.digestKey(pfxSplit, p0.Digest)); !errors.Is(err, badger.ErrKeyNotFound) {
		t.Fatalf("purged split payload still stored: %v", err)
	}
	// The window's other payload keeps the prefix they share.
	if got, err := j.Payload(p1.Digest); err != nil || !bytes.Equal(got, p1.Data) {
		t.Fatalf("payload of the same window after a purge: %v", err)
	}
	if err := j.Scrub(ctx, checkEmbedded); err != nil {
		t.Fatal(err)
	}
	// Purged bytes exported again are stored again, in the shape asked.
	if _, err := j.AppendBatch(ctx, []Entry{{Build: build("again"), Payloads: []Payload{p0, {Digest: od, Data: ob}}}}); err != nil {
		t.Fatal(err)
	}
	if got, err := j.Payload(p0.Digest); err != nil || !bytes.Equal(got, p0.Data) {
		t.Fatalf("split payload stored again: %v", err)
	}
	if got, err := j.Payload(od); err != nil || !bytes.Equal(got, ob) {
		t.Fatalf("old payload stored again: %q %v", got, err)
	}
}

// A split payload whose prefix is missing, whose value is malformed, or
// whose joined bytes are not those of its digest is a *CorruptError,
// never other bytes.
func TestSplitPayloadCorrupt(t *testing.T) {
	ctx := context.Background()
	j := openT(t, t.TempDir(), func(o *Options) { o.EncryptionKey = bytes.Repeat([]byte{3}, 32) })
	defer j.Close()
	p, prefix := splitFile(0, 0)
	q, _ := splitFile(1, 1)
	if _, err := j.AppendBatch(ctx, []Entry{{Build: build("p"), Payloads: []Payload{p}}, {Build: build("q"), Payloads: []Payload{q}}}); err != nil {
		t.Fatal(err)
	}
	set := func(key, val []byte) {
		t.Helper()
		if err := j.db.Update(func(txn *badger.Txn) error { return j.c.set(txn, key, val) }); err != nil {
			t.Fatal(err)
		}
	}
	corrupt := func(what string, d [32]byte) {
		t.Helper()
		var ce *CorruptError
		if got, err := j.Payload(d); !errors.As(err, &ce) || got != nil {
			t.Fatalf("%s: %d bytes, %v; want a *CorruptError", what, len(got), err)
		}
	}
	sv, err := rawGet(t, j, j.c.digestKey(pfxSplit, p.Digest))
	if err != nil {
		t.Fatal(err)
	}
	// Another window's prefix named: the joined bytes are not p's.
	qv, err := rawGet(t, j, j.c.digestKey(pfxSplit, q.Digest))
	if err != nil {
		t.Fatal(err)
	}
	set(j.c.digestKey(pfxSplit, p.Digest), append(bytes.Clone(qv[:splitHeader]), sv[splitHeader:]...))
	corrupt("other prefix", p.Digest)
	// A prefix that is not stored.
	bad := bytes.Clone(sv)
	bad[1] ^= 1
	set(j.c.digestKey(pfxSplit, p.Digest), bad)
	corrupt("missing prefix", p.Digest)
	// Unknown version, and too short.
	bad = bytes.Clone(sv)
	bad[0] = 2
	set(j.c.digestKey(pfxSplit, p.Digest), bad)
	corrupt("version", p.Digest)
	set(j.c.digestKey(pfxSplit, p.Digest), sv[:splitHeader-1])
	corrupt("short", p.Digest)
	// Put right again, then lose the prefix itself.
	set(j.c.digestKey(pfxSplit, p.Digest), sv)
	if got, err := j.Payload(p.Digest); err != nil || !bytes.Equal(got, p.Data) {
		t.Fatalf("restored: %v", err)
	}
	if err := j.db.Update(func(txn *badger.Txn) error { return txn.Delete(j.c.digestKey(pfxPrefix, sha256.Sum256(prefix))) }); err != nil {
		t.Fatal(err)
	}
	corrupt("prefix deleted", p.Digest)
}

// A prefix longer than its payload, or negative, is refused before
// anything is queued.
func TestSplitPayloadBadPrefix(t *testing.T) {
	j := openT(t, t.TempDir())
	defer j.Close()
	data := []byte("short")
	for _, n := range []int{-1, len(data) + 1} {
		_, err := j.Append(context.Background(), Entry{Build: mustNotBuild(t), Payloads: []Payload{{Digest: sha256.Sum256(data), Data: data, Prefix: n}}})
		if err == nil {
			t.Fatalf("prefix %d accepted", n)
		}
	}
	if j.Size() != 0 {
		t.Fatalf("size %d after refused appends", j.Size())
	}
}

// The same bytes journaled in both shapes (the sequencer checks only the
// shape it writes) read as those bytes, and a purge deletes both.
func TestSplitPayloadBothShapes(t *testing.T) {
	ctx := context.Background()
	j := openT(t, t.TempDir())
	defer j.Close()
	p, _ := splitFile(0, 0)
	whole := Payload{Digest: p.Digest, Data: p.Data}
	if _, err := j.Append(ctx, Entry{Build: build("split"), Payloads: []Payload{p}}); err != nil {
		t.Fatal(err)
	}
	if _, err := j.Append(ctx, Entry{Build: build("whole"), Payloads: []Payload{whole}}); err != nil {
		t.Fatal(err)
	}
	for _, pfx := range []byte{pfxPayload, pfxSplit} {
		if _, err := rawGet(t, j, j.c.digestKey(pfx, p.Digest)); err != nil {
			t.Fatalf("shape %c: %v", pfx, err)
		}
	}
	if got, err := j.Payload(p.Digest); err != nil || !bytes.Equal(got, p.Data) {
		t.Fatalf("payload in both shapes: %v", err)
	}
	if err := j.PurgePayload(ctx, p.Digest); err != nil {
		t.Fatal(err)
	}
	for _, pfx := range []byte{pfxPayload, pfxSplit} {
		if _, err := rawGet(t, j, j.c.digestKey(pfx, p.Digest)); !errors.Is(err, badger.ErrKeyNotFound) {
			t.Fatalf("shape %c after purge: %v", pfx, err)
		}
	}
	if _, err := j.Payload(p.Digest); !errors.Is(err, ErrPurged) {
		t.Fatalf("after purge: %v, want ErrPurged", err)
	}
	if present, purged, err := j.PayloadState(p.Digest); present || !purged || err != nil {
		t.Fatalf("state after purge: %v %v %v", present, purged, err)
	}
}
