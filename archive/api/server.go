package api

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/edgeseal/edgeseal/archive"
)

// DefaultSessionTTL is how long a session lasts by default.
const DefaultSessionTTL = 8 * time.Hour

// maxSignIns bounds the argon2id hashes computed at once (64 MiB each).
const maxSignIns = 2

// Options configure New.
type Options struct {
	// Archive is what the API reads. Required.
	Archive *archive.Archive
	// Users are the local accounts. Required.
	Users *Users
	// SessionTTL is a session's lifetime. Default DefaultSessionTTL.
	SessionTTL time.Duration
	// SecureCookie sets Secure on the session cookie (the listener has TLS).
	SecureCookie bool
	// OIDC, when set, signs users in from the organization's identity
	// provider (NewOIDC): GET /v1/oidc/login and /v1/oidc/callback.
	OIDC *OIDC
	// Decrypt says which roles may decrypt which classification
	// (api.decrypt); nil: no one may.
	Decrypt DecryptPolicy
	// Logger receives sign-in failures and errors. nil: discard.
	Logger *slog.Logger
	// Now is the clock. Default time.Now.
	Now func() time.Time
}

// Server is the read API. It is an http.Handler.
type Server struct {
	opts    Options
	a       *archive.Archive
	lg      *slog.Logger
	mux     *http.ServeMux
	ss      *sessions
	signIns chan struct{}
	// patterns have their 405 handler.
	patterns map[string]bool
}

// New returns the API server.
func New(opts Options) (*Server, error) {
	if opts.Archive == nil || opts.Users == nil {
		return nil, errors.New("api: Options.Archive and Options.Users are required")
	}
	if opts.SessionTTL <= 0 {
		opts.SessionTTL = DefaultSessionTTL
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	s := &Server{opts: opts, a: opts.Archive, lg: opts.Logger, mux: http.NewServeMux(), ss: newSessions(opts.Now), signIns: make(chan struct{}, maxSignIns), patterns: map[string]bool{}}
	s.routes()
	return s, nil
}

// ServeHTTP serves the API.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Frame-Options", "DENY")
	s.mux.ServeHTTP(w, r)
}

// reply is what a handler decided: the access log records its outcome
// and target before write sends it.
type reply struct {
	outcome string
	target  archive.AccessTarget
	// decrypt, when set, makes the call's entry a decrypt entry.
	decrypt *archive.AccessDecrypt
	write   func(w http.ResponseWriter)
}

// Access outcomes.
const (
	outcomeOK             = "ok"
	outcomeNotFound       = "not_found"
	outcomeForbidden      = "forbidden"
	outcomeGone           = "gone"
	outcomeBadRequest     = "bad_request"
	outcomeNotImplemented = "not_implemented"
)

type handler func(r *http.Request, s *session) reply

// route registers an authenticated, access-logged endpoint.
func (s *Server) route(method, pattern, action string, roles []string, h handler) {
	s.mux.HandleFunc(method+" "+pattern, func(w http.ResponseWriter, r *http.Request) {
		sess := s.authenticate(w, r)
		if sess == nil {
			return
		}
		var rep reply
		if !sess.has(roles...) {
			rep = errReply(http.StatusForbidden, "forbidden", "your roles do not allow this")
			rep.target = requestTarget(r)
			rep.decrypt = askedDecrypt(r, &rep.target)
		} else {
			rep = h(r, sess)
		}
		if !s.record(w, r, sess, action, rep) {
			return
		}
		rep.write(w)
	})
	s.methodNotAllowed(pattern)
}

// methodNotAllowed answers other methods on pattern with JSON 405.
func (s *Server) methodNotAllowed(pattern string) {
	if s.patterns[pattern] {
		return
	}
	s.patterns[pattern] = true
	s.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusMethodNotAllowed, "method_not_allowed", "method "+r.Method+" is not allowed here")
	})
}

// authenticate returns the request's live session, or answers 401.
func (s *Server) authenticate(w http.ResponseWriter, r *http.Request) *session {
	sess := s.ss.get(tokenOf(r))
	if sess != nil && sess.via == "local" {
		// A disabled or removed account ends its sessions at once.
		u, err := s.opts.Users.lookup(sess.user)
		if err != nil {
			s.lg.Error("api: users file", "err", err)
			writeError(w, http.StatusServiceUnavailable, "unavailable", "the users file cannot be read")
			return nil
		}
		if u == nil || u.Disabled {
			s.ss.dropUser(sess.user)
			sess = nil
		}
	}
	if sess == nil {
		writeError(w, http.StatusUnauthorized, "unauthorized", "sign in first (no session, or it expired)")
		return nil
	}
	return sess
}

// record appends the access entry of a call; false (answered 503) when
// it cannot.
func (s *Server) record(w http.ResponseWriter, r *http.Request, sess *session, action string, rep reply) bool {
	_, err := s.a.RecordAccess(r.Context(), archive.AccessEntry{
		User: sess.user, Via: sess.via, Roles: sess.roles, Action: action, Outcome: rep.outcome,
		Target: rep.target, Remote: r.RemoteAddr, UserAgent: r.UserAgent(), Decrypt: rep.decrypt,
	})
	if err != nil {
		s.lg.Error("api: access log: read refused", "user", sess.user, "action", action, "err", err)
		writeError(w, http.StatusServiceUnavailable, "unavailable", "the access log cannot record this read")
		return false
	}
	return true
}

// Handle mounts a page or pack handler (for parts of the archive other
// than the API): it runs only for a session holding one of roles, after
// its access entry (action, target path) is appended.
func (s *Server) Handle(pattern, action string, roles []string, h http.Handler) {
	s.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		sess := s.authenticate(w, r)
		if sess == nil {
			return
		}
		rep := reply{outcome: outcomeOK, target: archive.AccessTarget{Path: r.URL.Path}}
		allowed := sess.has(roles...)
		if !allowed {
			rep.outcome = outcomeForbidden
		}
		if !s.record(w, r, sess, action, rep) {
			return
		}
		if !allowed {
			writeError(w, http.StatusForbidden, "forbidden", "your roles do not allow this")
			return
		}
		h.ServeHTTP(w, r)
	})
}

// requestTarget is what a request names (for the access entry of a call
// refused before its handler ran): path values and the query string.
func requestTarget(r *http.Request) archive.AccessTarget {
	t := archive.AccessTarget{Query: r.URL.RawQuery}
	if site, name := r.PathValue("site"), r.PathValue("name"); site != "" && name != "" {
		t.Device, t.Export = site+"/"+name, r.PathValue("id")
	}
	if d := r.PathValue("digest"); d != "" {
		if name, _, err := parseDigest("digest", d); err == nil {
			t.Bundle = name
		}
	}
	if p, err := parseParams(r.URL.RawQuery, exportParams...); err == nil {
		t.Device, t.Export, t.Bundle = cmp.Or(t.Device, p["device"]), cmp.Or(t.Export, p["export"]), cmp.Or(t.Bundle, p["bundle"])
	}
	return t
}

type apiError struct {
	Error   string `json:"error"`
	Message string `json:"message"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"error":"internal","message":"encoding the answer failed"}`)
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, apiError{Error: code, Message: msg})
}

func outcomeOf(status int) string {
	switch status {
	case http.StatusNotFound:
		return outcomeNotFound
	case http.StatusForbidden:
		return outcomeForbidden
	case http.StatusGone:
		return outcomeGone
	case http.StatusBadRequest:
		return outcomeBadRequest
	case http.StatusNotImplemented:
		return outcomeNotImplemented
	}
	return "error"
}

func errReply(status int, code, msg string) reply {
	return reply{outcome: outcomeOf(status), write: func(w http.ResponseWriter) { writeError(w, status, code, msg) }}
}

func jsonReply(target archive.AccessTarget, v any) reply {
	return reply{outcome: outcomeOK, target: target, write: func(w http.ResponseWriter) { writeJSON(w, http.StatusOK, v) }}
}

// failReply maps an error of the archive to an answer.
func (s *Server) failReply(err error, target archive.AccessTarget) reply {
	var pe *ParamError
	var rep reply
	switch {
	case errors.As(err, &pe):
		rep = errReply(http.StatusBadRequest, "bad_request", pe.Error())
	case errors.Is(err, archive.ErrBadCursor):
		rep = errReply(http.StatusBadRequest, "bad_request", "parameter \"cursor\": malformed or made for other parameters")
	case errors.Is(err, archive.ErrNotFound):
		rep = errReply(http.StatusNotFound, "not_found", "not found")
	case errors.Is(err, context.Canceled):
		rep = errReply(http.StatusServiceUnavailable, "unavailable", "cancelled")
	default:
		s.lg.Error("api: read failed", "err", err)
		rep = errReply(http.StatusServiceUnavailable, "unavailable", "the archive could not answer")
		rep.outcome = "error"
	}
	rep.target = target
	return rep
}

// CheckListen refuses a listen address off loopback without TLS.
func CheckListen(addr string, tls bool) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("api: listen %q: %w", addr, err)
	}
	if tls {
		return nil
	}
	if strings.EqualFold(host, "localhost") {
		return nil
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("api: listen %q is not a loopback address: set api.tls_cert and api.tls_key", addr)
	}
	return nil
}
