package api

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/edgeseal/edgeseal/agent"
	"github.com/edgeseal/edgeseal/bundle/custody"
	"github.com/edgeseal/edgeseal/bundle/wire"
)

// Caps on the export.rejected records journaled for export calls without a
// valid token, so nobody without a token can fill the journal.
const (
	// UnauthenticatedPerSecond: refusals journaled in one second.
	UnauthenticatedPerSecond = 10
	// DefaultUnauthenticatedPerDay: refusals journaled in one UTC day
	// (Options.UnauthenticatedPerDay). When it is reached, one more
	// record says so; the refusals after it that day are only logged
	// and counted (Options.Unjournaled, the metric
	// edgeseal_agent_unauthenticated_unjournaled_total).
	DefaultUnauthenticatedPerDay = 1000
)

// unauthLimiter counts journaled unauthenticated refusals per second and
// per UTC day.
type unauthLimiter struct {
	mu     sync.Mutex
	perDay int
	second int64
	nSec   int
	day    string // "2006-01-02" UTC
	nDay   int
}

// verdict is what to do with one unauthenticated refusal.
type verdict int

const (
	journalIt verdict = iota
	summarize         // the daily cap is reached now: journal that, once
	logOnly           // over a cap: count and log only
)

func (l *unauthLimiter) allow(now time.Time) verdict {
	l.mu.Lock()
	defer l.mu.Unlock()
	if sec := now.Unix(); sec != l.second {
		l.second, l.nSec = sec, 0
	}
	if day := now.UTC().Format(time.DateOnly); day != l.day {
		l.day, l.nDay = day, 0
	}
	if l.nDay > l.perDay {
		return logOnly
	}
	if l.nDay == l.perDay {
		l.nDay++
		return summarize
	}
	if l.nSec >= UnauthenticatedPerSecond {
		return logOnly
	}
	l.nSec++
	l.nDay++
	return journalIt
}

// DailyCapError is the reason of the one record journaled when the daily
// cap on unauthenticated refusals is reached.
type DailyCapError struct {
	Day string // UTC, 2006-01-02
	Cap int
}

func (e *DailyCapError) Error() string {
	return fmt.Sprintf("api: %d unauthenticated export refusals journaled on %s (the daily cap); more today are counted in edgeseal_agent_unauthenticated_unjournaled_total, not journaled", e.Cap, e.Day)
}

// RejectReason is the metrics reason of the daily-cap record.
func (e *DailyCapError) RejectReason() string { return "unauthenticated_daily_cap" }

// UnauthenticatedError is the reason journaled for an export call without
// a valid token. The caller's header text is never journaled, only its
// SHA-256 (lowercase hex), so the record's size is fixed whatever was
// sent; whoever holds the text can still match it.
type UnauthenticatedError struct {
	Err      *Error // the 401 answered
	IDSHA256 string // of the Edgeseal-Id header; "" when absent
}

func (e *UnauthenticatedError) Error() string {
	s := e.Err.Error()
	if e.IDSHA256 != "" {
		s += "; Edgeseal-Id header sha256:" + e.IDSHA256
	}
	return s
}

func (e *UnauthenticatedError) Unwrap() error { return e.Err }

// RejectReason is the code of the 401.
func (e *UnauthenticatedError) RejectReason() string { return e.Err.Code }

// headerDigest is "sha256:" and the hex SHA-256 of v, or "" for "".
func headerDigest(v string) string {
	if v == "" {
		return ""
	}
	return wire.FormatHash(sha256.Sum256([]byte(v)))
}

// unauthenticated journals (within the caps) and answers an export call
// refused for want of a valid token (a 401 *Error).
func (s *Server) unauthenticated(w http.ResponseWriter, r *http.Request, c Core, refusal *Error) {
	var err error = refusal
	actor := custody.Actor{Kind: "anonymous", ID: "unauthenticated", Via: s.opts.Via}
	now := s.opts.Now()
	switch s.unauthN.allow(now) {
	case journalIt:
		// Digests of the header text stand in for the text: the record
		// is the same size whatever the caller sent.
		req := agent.IngestRequest{Workflow: headerDigest(r.Header.Get(HeaderWorkflow)), App: headerDigest(r.Header.Get(HeaderApp))}
		cause := &UnauthenticatedError{Err: refusal}
		if id := headerDigest(r.Header.Get(HeaderID)); id != "" {
			cause.IDSHA256 = id[len("sha256:"):]
		}
		if jerr := c.Reject(r.Context(), actor, req, cause); jerr != nil {
			err = jerr
		}
	case summarize:
		capErr := &DailyCapError{Day: now.UTC().Format(time.DateOnly), Cap: s.unauthN.perDay}
		if jerr := c.Reject(r.Context(), actor, agent.IngestRequest{}, capErr); jerr != nil && !isRejected(jerr) {
			s.log.Error("journal the daily cap on unauthenticated refusals", "err", jerr)
		}
		s.log.Warn("daily cap on journaled unauthenticated export refusals reached; more today are counted, not journaled",
			"cap", s.unauthN.perDay, "day", capErr.Day)
		s.unjournaled()
	default:
		s.log.Warn("unauthenticated export attempt not journaled (over the per-second or daily cap)", "remote", r.RemoteAddr)
		s.unjournaled()
	}
	s.writeError(w, r, err)
}

func (s *Server) unjournaled() {
	if s.opts.Unjournaled != nil {
		s.opts.Unjournaled()
	}
}

func isRejected(err error) bool {
	var rej *agent.RejectedError
	return errors.As(err, &rej)
}
