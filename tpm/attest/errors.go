package attest

import (
	"errors"
	"fmt"
)

// ErrUnsupported reports a well-formed structure that uses an algorithm or
// type this package does not accept (anything but ECC P-256, ECDSA, SHA-256).
var ErrUnsupported = errors.New("attest: unsupported")

// FormatError reports bytes that do not decode as the named TPM structure.
type FormatError struct {
	Struct string // "TPMT_PUBLIC", "TPMS_ATTEST", "TPMT_SIGNATURE", "pcrs file"
	Err    error
}

func (e *FormatError) Error() string { return "attest: malformed " + e.Struct + ": " + e.Err.Error() }
func (e *FormatError) Unwrap() error { return e.Err }

// MismatchError reports a field that decoded fine but holds another value
// than the verifier expected.
type MismatchError struct {
	Field string // "magic", "type", "nonce", "pcr selection", "pcr digest", "certified name"
	Got   string
	Want  string
}

func (e *MismatchError) Error() string {
	return fmt.Sprintf("attest: %s mismatch: got %s, want %s", e.Field, e.Got, e.Want)
}

// SignatureError reports a signature that does not verify under the key.
type SignatureError struct {
	What string // "certify", "quote"
	Err  error  // optional cause (for example an unsupported scheme)
}

func (e *SignatureError) Error() string {
	if e.Err != nil {
		return "attest: " + e.What + " signature invalid: " + e.Err.Error()
	}
	return "attest: " + e.What + " signature invalid"
}
func (e *SignatureError) Unwrap() error { return e.Err }

func formatErr(s string, format string, args ...any) error {
	return &FormatError{Struct: s, Err: fmt.Errorf(format, args...)}
}
