package wire

import (
	"errors"
	"fmt"
)

// ErrTooLarge reports input beyond a size limit.
var ErrTooLarge = errors.New("bundle: too large")

// FormatError reports outside bytes that do not parse as the named format.
type FormatError struct {
	Format string // "record", "checkpoint", "envelope", "statement", "trust", "receipt", "tar", "bagit"
	Reason string
	Err    error // optional cause
}

func (e *FormatError) Error() string {
	s := "bundle: bad " + e.Format + ": " + e.Reason
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}
func (e *FormatError) Unwrap() error { return e.Err }

// FormatErr returns a *FormatError for format with a formatted reason.
func FormatErr(format, reason string, args ...any) error {
	return &FormatError{Format: format, Reason: fmt.Sprintf(reason, args...)}
}

// WrapFormat returns a *FormatError for format whose cause is err.
func WrapFormat(format, reason string, err error) error {
	return &FormatError{Format: format, Reason: reason, Err: err}
}

// NotCanonicalError reports JSON that parses but is not in RFC 8785
// canonical form (or not in the shape this package writes).
type NotCanonicalError struct {
	Format string
	Offset int   // first offending byte
	Err    error // optional reason
}

func (e *NotCanonicalError) Error() string {
	s := fmt.Sprintf("bundle: %s not canonical at byte %d", e.Format, e.Offset)
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

func (e *NotCanonicalError) Unwrap() error { return e.Err }

// SignatureError reports a signature that does not verify.
type SignatureError struct {
	What  string // "dsse", "receipt"
	KeyID string
}

func (e *SignatureError) Error() string {
	return "bundle: " + e.What + " signature invalid (keyid " + e.KeyID + ")"
}
