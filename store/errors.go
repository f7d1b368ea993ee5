package store

import (
	"errors"
	"fmt"
)

// Sentinel errors. Everything else is a typed error carrying data; all of
// them are wrapped with a "store: ..." prefix, so test with errors.Is and
// errors.As.
var (
	// ErrNotFound: the record, payload, checkpoint or outbox entry was never
	// stored (or lies beyond the journal's size).
	ErrNotFound = errors.New("not found")
	// ErrPurged: the payload was stored once and later purged; its
	// tombstone remains so "deleted on purpose" differs from "never here".
	ErrPurged = errors.New("payload purged")
	// ErrClosed: the journal was closed.
	ErrClosed = errors.New("journal closed")
	// ErrFailed: an earlier commit failed part way; the journal refuses
	// further writes until it is reopened (reopening is always safe: a
	// commit is applied whole or not at all).
	ErrFailed = errors.New("journal failed, reopen required")
	// ErrEncryptionKey: the encryption key does not open the data (wrong
	// key, missing key for an encrypted journal, or a key for a plain one).
	ErrEncryptionKey = errors.New("encryption key does not match the stored data")
	// ErrLocked: another process has the journal open (a running agent).
	ErrLocked = errors.New("the journal is open in another process")
)

// BusyError is returned by Append and AppendBatch when the queue in front
// of the sequencer already holds Limit entries. Callers map it to HTTP 503
// and retry later.
type BusyError struct {
	Pending int // entries waiting when the call was refused
	Limit   int // Options.MaxQueue
}

func (e *BusyError) Error() string {
	return fmt.Sprintf("journal busy: %d entries queued (limit %d)", e.Pending, e.Limit)
}

// ConflictError is returned when a write-once key (a checkpoint or an
// outbox entry) is written again with different bytes.
type ConflictError struct {
	Kind string // "checkpoint" or "outbox"
	Key  string // checkpoint size in decimal, or outbox id
}

func (e *ConflictError) Error() string {
	return fmt.Sprintf("%s %q already stored with other bytes", e.Kind, e.Key)
}

// DigestError is returned by Append when a payload's bytes do not hash to
// the digest it claims.
type DigestError struct {
	Want, Got [32]byte
}

func (e *DigestError) Error() string {
	return fmt.Sprintf("payload digest mismatch: claimed %x, bytes hash to %x", e.Want, e.Got)
}

// BuildError wraps the error returned (or the panic raised) by an Entry's
// Build function. The entry got no sequence number.
type BuildError struct {
	Err error
}

func (e *BuildError) Error() string { return "build: " + e.Err.Error() }
func (e *BuildError) Unwrap() error { return e.Err }

// TooLargeError is returned when one Append (or one AppendBatch) needs more
// bytes than a single atomic commit can hold. Nothing was written.
type TooLargeError struct {
	Size, Limit int64 // estimated commit bytes (counted up to the entry that went over), limit
	// Fit is the number of leading entries of the call that fit in one
	// commit (0: not even the first): the entry at index Fit took the
	// commit over its limit. AppendBatch(es[:Fit]) then fits as long as
	// nothing else changed (its entries' keys and payloads).
	Fit int
}

func (e *TooLargeError) Error() string {
	return fmt.Sprintf("entry needs %d bytes in one commit, limit %d", e.Size, e.Limit)
}

// DuplicateError is the result of an Entry whose Key was already used: by
// a record committed earlier, or by an earlier entry of the same group
// commit (the same AppendBatch included). The entry was not appended: its
// Build was not called and it got no sequence number. Seq is the record
// the key maps to (see Journal.Lookup); it is committed and synced by the
// time the error is returned. Key is a copy of the key.
type DuplicateError struct {
	Key []byte
	Seq uint64
}

func (e *DuplicateError) Error() string {
	return fmt.Sprintf("idempotency key %q already journaled as seq %d", e.Key, e.Seq)
}

// KeyTooLongError is returned by Append and AppendBatch (before anything
// is queued) and by Lookup when an idempotency key is longer than
// MaxKeyLen bytes.
type KeyTooLongError struct {
	Len, Limit int // key length, MaxKeyLen
}

func (e *KeyTooLongError) Error() string {
	return fmt.Sprintf("idempotency key is %d bytes, limit %d", e.Len, e.Limit)
}

// RangeError is returned when a sequence number or tree size lies beyond
// the journal (or an argument pair is out of order).
type RangeError struct {
	What string // what was asked, e.g. "inclusion proof"
	A, B uint64 // the offending arguments
	Size uint64 // journal size at the time
}

func (e *RangeError) Error() string {
	return fmt.Sprintf("%s (%d, %d) out of range for journal size %d", e.What, e.A, e.B, e.Size)
}

// CorruptError reports stored data that fails a consistency check: a record
// whose hash differs from its stored leaf hash, a missing key, an interior
// node that does not recompute, or damaged metadata.
type CorruptError struct {
	Seq  uint64 // record or stored-hash index concerned
	What string
}

func (e *CorruptError) Error() string {
	return fmt.Sprintf("corrupt journal at %d: %s", e.Seq, e.What)
}

// BatchError is returned by AppendBatch when some entries failed to build
// (or had a bad payload) while the others were committed. Errs is aligned
// with the entries: nil where the entry was appended.
type BatchError struct {
	Errs []error
}

func (e *BatchError) Error() string {
	n, first := 0, error(nil)
	for _, err := range e.Errs {
		if err != nil {
			if first == nil {
				first = err
			}
			n++
		}
	}
	return fmt.Sprintf("%d of %d entries failed (first: %v)", n, len(e.Errs), first)
}

// Unwrap exposes the individual errors to errors.Is / errors.As.
func (e *BatchError) Unwrap() []error {
	var out []error
	for _, err := range e.Errs {
		if err != nil {
			out = append(out, err)
		}
	}
	return out
}
