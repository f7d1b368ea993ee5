package sync

import (
	"errors"
	"fmt"
)

// ErrFrame is matched (errors.Is) by every *FrameError.
var ErrFrame = errors.New("sync: malformed frame")

// FrameError reports a frame that does not decode: Offset is the byte where
// decoding stopped, Reason says why.
type FrameError struct {
	Offset int
	Reason string
	Err    error // underlying error, if any
}

func (e *FrameError) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("sync: malformed frame at byte %d: %s: %v", e.Offset, e.Reason, e.Err)
	}
	return fmt.Sprintf("sync: malformed frame at byte %d: %s", e.Offset, e.Reason)
}

// Is makes errors.Is(err, ErrFrame) true.
func (e *FrameError) Is(target error) bool { return target == ErrFrame }

// Unwrap returns the underlying error.
func (e *FrameError) Unwrap() error { return e.Err }

// LimitError reports an assembler bound: What ("bundle size", "partial
// bytes", ...), the Value asked for and the Limit.
type LimitError struct {
	What  string
	Value int64
	Limit int64
}

func (e *LimitError) Error() string {
	return fmt.Sprintf("sync: %s %d exceeds limit %d", e.What, e.Value, e.Limit)
}

// MismatchError reports a frame whose header disagrees with earlier frames
// of the same bundle (Field: "id", "count", "size", "chunk").
type MismatchError struct {
	Bundle string
	Field  string
	Want   string
	Got    string
}

func (e *MismatchError) Error() string {
	return fmt.Sprintf("sync: bundle %s: frame %s %s, earlier frames say %s", e.Bundle, e.Field, e.Got, e.Want)
}

// DigestError reports a reassembled bundle whose SHA-256 is not the one
// its frames announced; the bundle is dropped.
type DigestError struct {
	Want string
	Got  string
}

func (e *DigestError) Error() string {
	return fmt.Sprintf("sync: reassembled bundle has digest %s, frames announced %s", e.Got, e.Want)
}

// ReplyError reports a receipt or rejection the publisher did not accept
// (bad signature, unknown format, other device, unknown bundle). Kind is
// "receipt", "rejection" or "reply".
type ReplyError struct {
	Kind   string
	Reason string
	Err    error
}

func (e *ReplyError) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("sync: %s refused: %s: %v", e.Kind, e.Reason, e.Err)
	}
	return fmt.Sprintf("sync: %s refused: %s", e.Kind, e.Reason)
}

// Unwrap returns the underlying error.
func (e *ReplyError) Unwrap() error { return e.Err }

// ConfigError reports an invalid option.
type ConfigError struct {
	Field  string
	Reason string
}

func (e *ConfigError) Error() string {
	return fmt.Sprintf("sync: option %s: %s", e.Field, e.Reason)
}

// ConnectError reports a failed connection to the broker; it is transient
// (the loops retry with backoff).
type ConnectError struct {
	Broker string
	Err    error
}

func (e *ConnectError) Error() string { return fmt.Sprintf("sync: connect %s: %v", e.Broker, e.Err) }

// Unwrap returns the underlying error.
func (e *ConnectError) Unwrap() error { return e.Err }

// PublishError reports a failed MQTT publish or subscribe on Topic.
type PublishError struct {
	Topic string
	Err   error
}

func (e *PublishError) Error() string { return fmt.Sprintf("sync: publish %s: %v", e.Topic, e.Err) }

// Unwrap returns the underlying error.
func (e *PublishError) Unwrap() error { return e.Err }

// ErrNotConnected is returned by calls that need a live broker connection.
var ErrNotConnected = errors.New("sync: not connected to the broker")
