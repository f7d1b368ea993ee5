package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"syscall"

	"github.com/edgeseal/edgeseal/agent"
	"github.com/edgeseal/edgeseal/agent/policy"
	"github.com/edgeseal/edgeseal/store"
	"github.com/edgeseal/edgeseal/tpm"
)

// Error codes the API answers besides the policy rules.
const (
	CodeUnauthorized     = "unauthorized"
	CodeForbidden        = "forbidden"
	CodeMalformedJSON    = "malformed_json"
	CodeBadField         = "bad_field"
	CodeUnsupportedMedia = "unsupported_media_type"
	CodeBodyTooLarge     = "body_too_large"
	CodeTooManyLines     = "too_many_lines"
	CodeCommitTooLarge   = "commit_too_large"
	CodeNotFound         = "not_found"
	CodeIDConflict       = "id_conflict"
	CodeAmbiguousID      = "ambiguous_id"
	CodeMethodNotAllowed = "method_not_allowed"
	CodeBusy             = "busy"
	CodeDiskNearlyFull   = "disk_nearly_full"
	CodeNoSpace          = "insufficient_storage"
	CodeUnavailable      = "unavailable"
	CodeNotReady         = "not_ready"
	CodePCRMismatch      = "pcr_mismatch"
	CodeInternal         = "internal"
)

// Error is a refusal decided by the API itself (decoding, auth, routing).
type Error struct {
	Status int
	Code   string
	Field  string
	Msg    string
	// RetryAfter, when above 0, is sent as Retry-After (seconds).
	RetryAfter int
}

// RejectReason is the error's code, the reason agent.RejectReason gives
// metrics for an export refused with it.
func (e *Error) RejectReason() string { return e.Code }

func (e *Error) Error() string {
	if e.Field != "" {
		return "api: " + e.Code + ": " + e.Field + ": " + e.Msg
	}
	return "api: " + e.Code + ": " + e.Msg
}

// ErrorBody is the JSON of every error answer.
type ErrorBody struct {
	Error ErrorInfo `json:"error"`
}

// ErrorInfo is the inner object of ErrorBody.
type ErrorInfo struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Field   string `json:"field"`
	// Set when the refusal was journaled as export.rejected.
	ExportID string  `json:"exportId,omitempty"`
	Seq      *uint64 `json:"seq,omitempty"`
	Leaf     string  `json:"leaf,omitempty"`
}

// answer is how an error is answered.
type answer struct {
	status     int
	retryAfter int // seconds; 0: no header
	info       ErrorInfo
}

// classify decides the answer to err by its type, never its text.
func classify(err error) answer {
	var a answer
	var (
		ae  *Error
		fe  *agent.FieldError
		ve  *policy.Violation
		fb  *agent.ForbiddenError
		nf  *agent.NotFoundError
		be  *store.BusyError
		ie  *InflightError
		se  *store.SpaceError
		tl  *store.TooLargeError
		pe  *tpm.PCRMismatchError
		rej *agent.RejectedError
		ic  *agent.IDConflictError
	)
	switch {
	case errors.As(err, &ae):
		a = answer{status: ae.Status, retryAfter: ae.RetryAfter, info: ErrorInfo{Code: ae.Code, Field: ae.Field, Message: ae.Msg}}
	case errors.As(err, &fb):
		a = answer{status: http.StatusForbidden, info: ErrorInfo{Code: CodeForbidden, Message: "principal " + fb.Principal + " lacks the " + string(fb.Role) + " role"}}
	case errors.As(err, &ve):
		a = answer{status: http.StatusUnprocessableEntity, info: ErrorInfo{Code: string(ve.Rule), Field: ve.Field, Message: ve.Message}}
	case errors.As(err, &fe):
		a = answer{status: http.StatusBadRequest, info: ErrorInfo{Code: CodeBadField, Field: fe.Field, Message: fe.Reason}}
	case errors.As(err, &ic):
		a = answer{status: http.StatusConflict, info: ErrorInfo{Code: CodeIDConflict, Field: "id",
			Message: "export id " + ic.ExportID + " was already used by this principal with a different " + ic.Differs +
				"; a repeat must send the same workflow and payload, a new export needs a new id"}}
	case errors.As(err, &nf):
		a = answer{status: http.StatusNotFound, info: ErrorInfo{Code: CodeNotFound, Message: nf.Error()}}
	case errors.As(err, &ie):
		a = answer{status: http.StatusServiceUnavailable, retryAfter: 1, info: ErrorInfo{Code: CodeBusy,
			Message: "the agent is taking in as many export bytes as api.max_inflight allows; retry"}}
	case errors.As(err, &be):
		a = answer{status: http.StatusServiceUnavailable, retryAfter: 1, info: ErrorInfo{Code: CodeBusy,
			Message: "the journal is busy (" + strconv.Itoa(be.Pending) + " entries queued); retry"}}
	case errors.As(err, &se):
		a = answer{status: http.StatusServiceUnavailable, retryAfter: 30, info: ErrorInfo{Code: CodeDiskNearlyFull,
			Message: "the agent's disk is nearly full; nothing was journaled; retry once space is freed"}}
	case errors.Is(err, syscall.ENOSPC):
		a = answer{status: http.StatusInsufficientStorage, info: ErrorInfo{Code: CodeNoSpace,
			Message: "a journal write failed for lack of disk space"}}
	case errors.As(err, &tl):
		a = answer{status: http.StatusRequestEntityTooLarge, info: ErrorInfo{Code: CodeCommitTooLarge,
			Message: fmt.Sprintf("the request needs about %d bytes in one journal commit, over its limit of %d; send fewer lines per batch", tl.Size, tl.Limit)}}
	case errors.As(err, &pe):
		a = answer{status: http.StatusServiceUnavailable, info: ErrorInfo{Code: CodePCRMismatch,
			Message: "the TPM refuses to sign: PCRs changed since the key was bound; an operator must re-bind"}}
	case errors.Is(err, store.ErrClosed), errors.Is(err, store.ErrFailed),
		errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		a = answer{status: http.StatusServiceUnavailable, retryAfter: 5, info: ErrorInfo{Code: CodeUnavailable,
			Message: "the agent cannot take this now; retry"}}
	default:
		a = answer{status: http.StatusInternalServerError, info: ErrorInfo{Code: CodeInternal, Message: "internal error"}}
	}
	if errors.As(err, &rej) {
		seq := rej.Seq
		a.info.ExportID, a.info.Seq, a.info.Leaf = rej.ExportID, &seq, rej.Leaf
	}
	return a
}

// writeError answers err; 5xx causes are logged (500s are not shown).
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	a := classify(err)
	switch {
	case a.status == http.StatusInternalServerError:
		s.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	case a.status >= 500:
		s.log.Warn("request refused", "method", r.Method, "path", r.URL.Path, "status", a.status, "err", err)
	default:
		s.log.Debug("request refused", "method", r.Method, "path", r.URL.Path, "status", a.status, "err", err)
	}
	if a.retryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(a.retryAfter))
	}
	if a.status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="edgeseal"`)
	}
	writeJSON(w, a.status, ErrorBody{Error: a.info})
}

// writeJSON answers v as JSON without HTML escaping (records stay byte-exact).
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v) // the client went away; nothing to do
}

// logger returns l or a discarding logger.
func logger(l *slog.Logger) *slog.Logger {
	if l == nil {
		return slog.New(slog.DiscardHandler)
	}
	return l
}
