package agent

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/edgeseal/edgeseal/agent/policy"
	"github.com/edgeseal/edgeseal/bundle/custody"
)

// Observer is told what the core does, for metrics (the daemon's
// Prometheus collectors implement it; the agent package does not import
// Prometheus). Its methods are called on the hot path and must not block.
// A nil Options.Observer observes nothing.
type Observer interface {
	// ExportAccepted counts one export journaled (a repeated id answered
	// with its original receipt is not counted).
	ExportAccepted()
	// ExportRejected counts one export journaled as export.rejected;
	// reason is RejectReason of the cause.
	ExportRejected(reason string)
	// Sealed counts one seal that wrote a bundle and how long it took.
	Sealed(d time.Duration)
	// SealFailed counts one seal that failed.
	SealFailed()
	// TPMError counts one failed TPM command of a seal: op is "counter",
	// "quote" or "sign".
	TPMError(op string)
}

// Reason codes of RejectReason besides the policy rules.
const (
	ReasonForbidden    = "forbidden"     // the principal is no exporter
	ReasonInvalidField = "invalid_field" // bad metadata (*FieldError)
	ReasonInvalid      = "invalid"       // any other cause
)

// RejectReason is the short, bounded code of why an export was refused,
// for metrics: the policy rule of a *policy.Violation, "forbidden",
// "invalid_field", the code of a cause that has a RejectReason() string
// method (the API's errors: "unauthorized", "malformed_json", ...), or
// "invalid".
func RejectReason(cause error) string {
	var v *policy.Violation
	if errors.As(cause, &v) {
		return string(v.Rule)
	}
	var fe *ForbiddenError
	if errors.As(cause, &fe) {
		return ReasonForbidden
	}
	var fi *FieldError
	if errors.As(cause, &fi) {
		return ReasonInvalidField
	}
	var rc interface{ RejectReason() string }
	if errors.As(cause, &rc) {
		if r := rc.RejectReason(); r != "" {
			return r
		}
	}
	return ReasonInvalid
}

// nopObserver is the Observer of a core without one.
type nopObserver struct{}

func (nopObserver) ExportAccepted()       {}
func (nopObserver) ExportRejected(string) {}
func (nopObserver) Sealed(time.Duration)  {}
func (nopObserver) SealFailed()           {}
func (nopObserver) TPMError(string)       {}

// OutboxState is what waits to be delivered.
type OutboxState struct {
	Depth int // bundles in the outbox
	// Oldest is when the oldest bundle in it was sealed (the time of its
	// seal record); zero when the outbox is empty or the time is unknown.
	Oldest time.Time
}

// OutboxState reports the outbox without reading its bundles: their count and
// when the oldest was sealed.
func (c *Core) OutboxState(ctx context.Context) (OutboxState, error) {
	var ids []string
	err := c.j.OutboxIDs(ctx, func(id string) error { ids = append(ids, id); return nil })
	if err != nil {
		return OutboxState{}, fmt.Errorf("agent: outbox: %w", err)
	}
	st := OutboxState{Depth: len(ids)}
	if len(ids) == 0 {
		return st, nil
	}
	// The bundle of id N seals records 0..N-1; its seal record is N.
	n, err := strconv.ParseUint(ids[0], 10, 64)
	if err != nil || n >= c.j.Size() {
		return st, nil
	}
	rec, err := c.j.Record(n)
	if err != nil {
		return st, nil
	}
	if r, err := custody.ParseRecord(rec); err == nil {
		st.Oldest = r.Time
	}
	return st, nil
}
