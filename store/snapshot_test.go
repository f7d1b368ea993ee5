package store

import (
	"context"
	"errors"
	"testing"
)

// A snapshot answers lookups as of when it was taken: keys appended after
// are not found in it, and it refuses lookups once closed.
func TestSnapshotLookup(t *testing.T) {
	ctx := context.Background()
	j := openT(t, t.TempDir(), func(o *Options) { o.EncryptionKey = make([]byte, 32) })
	defer j.Close()
	if _, err := j.Append(ctx, Entry{Build: build("a"), Key: []byte("a")}); err != nil {
		t.Fatal(err)
	}
	s, err := j.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := j.Append(ctx, Entry{Build: build("b"), Key: []byte("b")}); err != nil {
		t.Fatal(err)
	}
	if s.Size() != 1 {
		t.Fatalf("snapshot size %d, want 1", s.Size())
	}
	if seq, err := s.Lookup([]byte("a")); err != nil || seq != 0 {
		t.Fatalf("lookup a: %d %v", seq, err)
	}
	if _, err := s.Lookup([]byte("b")); !errors.Is(err, ErrNotFound) {
		t.Fatalf("lookup of a later key: %v, want ErrNotFound", err)
	}
	if _, err := s.Lookup(nil); !errors.Is(err, ErrNotFound) {
		t.Fatalf("lookup of an empty key: %v", err)
	}
	if _, err := s.Lookup(make([]byte, MaxKeyLen+1)); !errors.As(err, new(*KeyTooLongError)) {
		t.Fatalf("lookup of a long key: %v", err)
	}
	s.Close()
	s.Close()
	if _, err := s.Lookup([]byte("a")); !errors.Is(err, ErrClosed) {
		t.Fatalf("lookup after close: %v", err)
	}
	if seq, err := j.Lookup([]byte("b")); err != nil || seq != 1 {
		t.Fatalf("journal lookup b: %d %v", seq, err)
	}
}
