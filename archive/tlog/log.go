package tlog

import (
	"context"
	"errors"
	"fmt"

	"golang.org/x/mod/sumdb/note"

	"github.com/edgeseal/edgeseal/bundle/merkle"
)

// MaxEntrySize is the largest entry a Log takes (C2SP tlog-tiles: an
// entry bundle holds entries of at most 65535 bytes).
const MaxEntrySize = 1<<16 - 1

// Log is an append-only RFC 6962 Merkle log with signed checkpoints.
// All methods are safe for concurrent use.
type Log interface {
	// Append adds entry and returns its index once the entry is durable
	// and integrated into the tree: after a crash it is still there, at
	// that index. It is in no published checkpoint yet (AwaitCheckpoint).
	// An entry over MaxEntrySize: *EntryTooLargeError.
	Append(ctx context.Context, entry []byte) (uint64, error)
	// AppendBatch appends entries as Append does, in their order, and
	// returns their indexes once every one is durable and integrated. On
	// an error some of them may be in the log (each at most once).
	AppendBatch(ctx context.Context, entries [][]byte) ([]uint64, error)
	// Size is the number of integrated entries.
	Size(ctx context.Context) (uint64, error)
	// Checkpoint returns the latest published checkpoint; ErrNoCheckpoint
	// when none is published yet.
	Checkpoint(ctx context.Context) (Checkpoint, error)
	// AwaitCheckpoint waits until a published checkpoint covers size
	// entries (Size >= size) and returns it; size beyond Size:
	// *RangeError.
	AwaitCheckpoint(ctx context.Context, size uint64) (Checkpoint, error)
	// InclusionProof proves entry index in the tree of size entries
	// (index < size <= Size, else *RangeError).
	InclusionProof(ctx context.Context, index, size uint64) ([][32]byte, error)
	// ConsistencyProof proves the tree of oldSize entries is a prefix of
	// the tree of newSize (oldSize <= newSize <= Size, else *RangeError).
	ConsistencyProof(ctx context.Context, oldSize, newSize uint64) ([][32]byte, error)
	// Entry returns entry index (index < Size, else *RangeError).
	Entry(ctx context.Context, index uint64) ([]byte, error)
	// Entries calls fn with each entry in [from, to), in order (to <=
	// Size, else *RangeError); it stops at fn's first error or ctx's and
	// returns it. fn must not keep entry.
	Entries(ctx context.Context, from, to uint64, fn func(index uint64, entry []byte) error) error
	// Close waits until every acknowledged entry is in a published
	// checkpoint (bounded by ctx), then releases the log.
	Close(ctx context.Context) error
}

// Failer is implemented by a Log that can fail outside any call, in a
// write of its own (a compaction, a flush): Failed is closed then, the
// log refuses every call from then on, and Err says why.
type Failer interface {
	Failed() <-chan struct{}
	Err() error
}

// Checkpoint is a published checkpoint: its signed note and the body it
// carries.
type Checkpoint struct {
	Size   uint64
	Root   [32]byte
	Origin string
	Note   []byte // the C2SP signed note, as published
}

// ErrNoCheckpoint: no checkpoint is published yet.
var ErrNoCheckpoint = errors.New("tlog: no checkpoint published")

// ErrClosed: the log was closed.
var ErrClosed = errors.New("tlog: log closed")

// EntryTooLargeError refuses an entry over MaxEntrySize.
type EntryTooLargeError struct{ Len int }

func (e *EntryTooLargeError) Error() string {
	return fmt.Sprintf("tlog: entry of %d bytes is over %d", e.Len, MaxEntrySize)
}

// RangeError refuses an index or size beyond the log.
type RangeError struct {
	What string // "inclusion proof", "consistency proof", "entry", "checkpoint"
	A, B uint64 // the arguments (index and size, old and new size)
	Size uint64 // the log's size then
}

func (e *RangeError) Error() string {
	return fmt.Sprintf("tlog: %s %d, %d: out of range for a log of %d", e.What, e.A, e.B, e.Size)
}

// OpenCheckpoint verifies a signed checkpoint note with v, or one of
// more (earlier keys of the same origin), and parses its body (three
// lines, origin = v's name).
func OpenCheckpoint(signed []byte, v note.Verifier, more ...note.Verifier) (Checkpoint, error) {
	n, err := note.Open(signed, note.VerifierList(append([]note.Verifier{v}, more...)...))
	if err != nil {
		return Checkpoint{}, fmt.Errorf("tlog: checkpoint: %w", err)
	}
	c, err := merkle.ParseAnyCheckpoint([]byte(n.Text))
	if err != nil {
		return Checkpoint{}, fmt.Errorf("tlog: checkpoint: %w", err)
	}
	if c.Origin != v.Name() {
		return Checkpoint{}, fmt.Errorf("tlog: checkpoint origin %q is not %q", c.Origin, v.Name())
	}
	return Checkpoint{Size: c.Size, Root: c.Root, Origin: c.Origin, Note: signed}, nil
}

// checkEntry refuses an entry over MaxEntrySize.
func checkEntry(entry []byte) error {
	if len(entry) > MaxEntrySize {
		return &EntryTooLargeError{Len: len(entry)}
	}
	return nil
}
