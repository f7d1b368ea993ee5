// Package wire holds what every edgeseal format shares: the errors a
// parser returns (FormatError for bytes that do not parse, NotCanonicalError
// for bytes that parse but are not the one canonical encoding,
// SignatureError, ErrTooLarge), hashes written "sha256:<64 lowercase hex>"
// (FormatHash, ParseHash, Hashed), times in TimeLayout (RFC 3339 UTC with
// exactly six fractional digits), and device names "<site>/<name>"
// (CheckDevice).
//
// The format packages return these types (and a few of their own, such
// as trustfile.PCRAuthError); the texts start with "bundle: ". Match them
// with errors.As and errors.Is, not by text. It holds no format of its own.
package wire
