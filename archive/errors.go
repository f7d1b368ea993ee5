package archive

import (
	"errors"
	"fmt"
	"strings"
)

// ErrNotFound reports an object, device or receipt that is not stored.
var ErrNotFound = errors.New("archive: not found")

// ConflictError is an alarm: an object already stored under Digest holds
// other bytes than the ones written now. With content addressing this
// means the stored copy was altered at rest (or the store lies).
type ConflictError struct {
	Digest [32]byte
	Where  string // backend-specific location (a path, an S3 key)
}

func (e *ConflictError) Error() string {
	return fmt.Sprintf("archive: object sha256:%x at %s already stored with other bytes", e.Digest, e.Where)
}

// CorruptError reports a stored object whose bytes no longer hash to its
// digest (a bit flip at rest): Get detects it by re-hashing.
type CorruptError struct {
	Digest, Got [32]byte
	Where       string
}

func (e *CorruptError) Error() string {
	return fmt.Sprintf("archive: object sha256:%x at %s is corrupt: bytes hash to %x", e.Digest, e.Where, e.Got)
}

// DigestError reports data handed to Put that does not hash to the digest
// it is stored under.
type DigestError struct {
	Want, Got [32]byte
}

func (e *DigestError) Error() string {
	return fmt.Sprintf("archive: put sha256:%x: data hashes to %x", e.Want, e.Got)
}

// DeviceError reports a device registry operation or lookup that cannot
// proceed: the device is unknown (wraps ErrNotFound), or in a status that
// does not allow it.
type DeviceError struct {
	Device string
	Status Status // current status, "" when unknown
	Op     string // "lookup", "approve", "revoke", "enroll"
	Reason string
}

func (e *DeviceError) Error() string {
	s := "archive: device " + e.Device + ": " + e.Op
	if e.Status != "" {
		s += " (" + string(e.Status) + ")"
	}
	return s + ": " + e.Reason
}

func (e *DeviceError) Unwrap() error {
	if e.Status == "" {
		return ErrNotFound
	}
	return nil
}

// RejectedError is returned by Receive for a refused bundle, together with
// the signed rejection as the reply. It is an answer, not a failure: the
// bundle is quarantined and alerted, and the reply should be delivered.
type RejectedError struct {
	Rejection *RejectionReport
	// Quarantine is where the bundle and its reason were kept.
	Quarantine string
}

func (e *RejectedError) Error() string {
	r := e.Rejection
	kind := "rejected"
	if r.Alarm {
		kind = "ALARM"
	}
	return fmt.Sprintf("archive: bundle %s from %s %s: %s (%s)", r.BundleDigest, r.Device, kind,
		strings.Join(r.Checks, ","), strings.Join(r.Reasons, "; "))
}

// Has reports whether the named check failed.
func (e *RejectedError) Has(check string) bool {
	for _, c := range e.Rejection.Checks {
		if c == check {
			return true
		}
	}
	return false
}
