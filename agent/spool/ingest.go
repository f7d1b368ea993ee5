package spool

import (
	"context"
	"fmt"

	"github.com/edgeseal/edgeseal/agent"
	"github.com/edgeseal/edgeseal/agent/config"
)

// Via is the channel spool exports are journaled with (the actor's via).
const Via = "spool"

// IngestRequest is one export read from the spool: the agent's request,
// the same the local API hands on. ID is always set (the sidecar's id or
// the derived one).
type IngestRequest = agent.IngestRequest

// Receipt answers an ingested export once its record is durable: the
// agent's receipt, the same the local API answers. It is written as
// NAME.receipt.json.
type Receipt = agent.ExportReceipt

// Ingester journals exports. Its contract:
//
//   - Ingest returns once the export's record is durable, with its receipt.
//   - An export id journaled before is answered with the original
//     receipt (Duplicate set), and nothing is journaled.
//   - An export refused for good (policy, metadata, role) returns an error
//     that errors.As finds a *RejectError in; the refusal should be
//     journaled by then.
//   - Any other error is transient: nothing was journaled, and the same
//     request may be tried again.
//
// agent.Core fits it through CoreIngester.
type Ingester interface {
	Ingest(ctx context.Context, principal *config.Principal, via string, req IngestRequest) (Receipt, error)
}

// Rejecter is implemented by Ingesters that can journal a refusal the
// watcher itself decided (a sidecar that does not decode, a sidecar naming
// another principal, a file over the size limit), so that those attempts
// are in the journal too. It returns the *RejectError to record, or a
// transient error (then the pair is tried again later).
type Rejecter interface {
	Reject(ctx context.Context, principal *config.Principal, via string, req IngestRequest, cause error) (*RejectError, error)
}

// RejectError is an export refused for good. It is written as
// NAME.error.json.
type RejectError struct {
	Code    string // machine-readable reason: a policy rule, "bad_meta", "too_large", "bad_field", ...
	Field   string // the field at fault, "" if none
	Message string
	// Seq and Leaf locate the export.rejected record, when journaled.
	Journaled bool
	Seq       uint64
	Leaf      string
	Err       error // the cause, if any
}

func (e *RejectError) Error() string {
	s := "spool: rejected: " + e.Code
	if e.Field != "" {
		s += ": " + e.Field
	}
	s += ": " + e.Message
	if e.Journaled {
		s += fmt.Sprintf(" (journaled at %d)", e.Seq)
	}
	return s
}

func (e *RejectError) Unwrap() error { return e.Err }
