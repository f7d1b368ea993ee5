package api

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/edgeseal/edgeseal/agent"
	"github.com/edgeseal/edgeseal/agent/config"
	"github.com/edgeseal/edgeseal/bundle/custody"
)

// Core is what the API needs of the agent's core. *agent.Core implements it.
type Core interface {
	Ingest(ctx context.Context, p *config.Principal, via string, req agent.IngestRequest) (agent.ExportReceipt, error)
	IngestBatch(ctx context.Context, p *config.Principal, via string, lines []agent.BatchLine) ([]agent.BatchResult, error)
	Reject(ctx context.Context, actor custody.Actor, req agent.IngestRequest, cause error) error
	ExportStatus(ctx context.Context, principal, id string) (*agent.ExportInfo, error)
	Checkpoint() (*agent.CheckpointInfo, error)
	Status(ctx context.Context) (*agent.Status, error)
	Seal(ctx context.Context) (*agent.SealResult, error)
}

// Defaults of Options.
const (
	DefaultMaxBody       = 32 << 20
	DefaultMaxBatchLines = 10000
	DefaultMaxBatches    = 2
)

// Options configure a Server.
type Options struct {
	Principals    config.Principals
	MaxBody       int64 // bytes; DefaultMaxBody when 0
	MaxBatchLines int   // DefaultMaxBatchLines when 0
	// MaxInflight bounds the bytes of single-export bodies held at once
	// (each counts its Content-Length, or MaxBody when that is unknown);
	// a request over it is answered 503 with Retry-After.
	// DefaultMaxInflight when 0; never below MaxBody.
	MaxInflight int64
	// MaxBatches is how many batch requests are read and ingested at
	// once; more wait their turn (bounded memory: a batch is held whole
	// while it is journaled, and the journal commits one at a time
	// anyway). DefaultMaxBatches when 0.
	MaxBatches int
	// BatchChunk bounds the line bytes of a batch held at once: a batch
	// is decoded as it arrives and journaled in sub-batches of at most
	// this many line bytes (a longer line is a sub-batch of its own).
	// DefaultBatchChunk when 0.
	BatchChunk int
	Logger     *slog.Logger
	// Via is recorded as the actor's channel; default "api".
	Via string
	// UnauthenticatedPerDay caps the export.rejected records journaled
	// for export calls without a valid token in one UTC day;
	// DefaultUnauthenticatedPerDay when 0.
	UnauthenticatedPerDay int
	// Now is the clock of the unauthenticated caps; time.Now when nil.
	Now func() time.Time
	// Unjournaled, when set, is called for each unauthenticated refusal
	// not journaled because a cap was reached (the daemon counts them in
	// a metric).
	Unjournaled func()
	// ReloadPolicy, when set, serves POST /v1/policy/reload (operator
	// role); nil answers it 404.
	ReloadPolicy PolicyReloader
}

// Server is the HTTP API. Create it with New, hand it the core with
// SetCore once everything is open (until then every call but /healthz
// answers 503 not_ready with Retry-After), serve listeners with Serve;
// on stop Drain keeps the listeners answering 503 while the core is
// left alone, and Shutdown closes them.
type Server struct {
	opts  Options
	log   *slog.Logger
	core  atomic.Pointer[coreRef]
	drain atomic.Bool
	// gate orders needCore's entry against Drain: a request either
	// entered (counted in busy) before draining began, or is answered 503.
	gate    sync.RWMutex
	busy    sync.WaitGroup
	mux     *http.ServeMux
	srv     *http.Server
	unauthN unauthLimiter
	batches chan struct{} // MaxBatches slots
	bodies  inflight      // MaxInflight bytes of single exports
}

type coreRef struct{ c Core }

// New builds a server.
func New(opts Options) *Server {
	if opts.MaxBody <= 0 {
		opts.MaxBody = DefaultMaxBody
	}
	if opts.MaxBatchLines <= 0 {
		opts.MaxBatchLines = DefaultMaxBatchLines
	}
	if opts.MaxInflight <= 0 {
		opts.MaxInflight = DefaultMaxInflight
	}
	opts.MaxInflight = max(opts.MaxInflight, opts.MaxBody)
	if opts.Via == "" {
		opts.Via = "api"
	}
	if opts.MaxBatches <= 0 {
		opts.MaxBatches = DefaultMaxBatches
	}
	if opts.BatchChunk <= 0 {
		opts.BatchChunk = DefaultBatchChunk
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.UnauthenticatedPerDay <= 0 {
		opts.UnauthenticatedPerDay = DefaultUnauthenticatedPerDay
	}
	s := &Server{opts: opts, log: logger(opts.Logger), mux: http.NewServeMux(), batches: make(chan struct{}, opts.MaxBatches)}
	s.unauthN.perDay = opts.UnauthenticatedPerDay
	s.bodies.limit = opts.MaxInflight
	s.routes()
	s.srv = &http.Server{
		Handler:           s.mux,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       5 * time.Minute,
		WriteTimeout:      5 * time.Minute,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	return s
}

// SetCore makes the server ready: calls reach c and /readyz answers 200.
func (s *Server) SetCore(c Core) { s.core.Store(&coreRef{c: c}) }

// Handler is the server's HTTP handler (for tests with httptest).
func (s *Server) Handler() http.Handler { return s.mux }

// NotReadyRetryAfter is the Retry-After, in seconds, of the 503
// not_ready answers while the agent starts or stops: a client that waits
// it and retries reaches the agent as soon as it is ready.
const NotReadyRetryAfter = 1

// Drain makes every call that needs the core answer 503 not_ready (with
// Retry-After) and /readyz 503, and waits until the calls already in
// the core have answered or ctx is done. The listeners stay open, so a
// client that connects while the agent finishes its work on stop (the
// last seal, closing the journal) hears 503 and when to retry rather than
// connection refused; Shutdown closes them.
func (s *Server) Drain(ctx context.Context) error {
	s.gate.Lock()
	s.drain.Store(true)
	s.gate.Unlock()
	done := make(chan struct{})
	go func() { s.busy.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("api: drain: %w", ctx.Err())
	}
}

// Serve serves ln until Shutdown; it returns nil after Shutdown.
func (s *Server) Serve(ln net.Listener) error {
	err := s.srv.Serve(ln)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// Shutdown stops accepting, makes /readyz answer 503 and waits for the
// requests in flight until ctx is done (then closes them).
func (s *Server) Shutdown(ctx context.Context) error {
	s.drain.Store(true)
	err := s.srv.Shutdown(ctx)
	if err != nil {
		_ = s.srv.Close()
	}
	return err
}

// routes registers every endpoint; each path also gets a catch-all that
// answers 405 in JSON for other methods, and "/" answers 404 in JSON.
func (s *Server) routes() {
	all := []config.Role{config.RoleExporter, config.RoleAuditor, config.RoleOperator}
	paths := map[string][]string{}
	add := func(method, path string, h http.HandlerFunc) {
		s.mux.HandleFunc(method+" "+path, h)
		paths[path] = append(paths[path], method)
	}
	add(http.MethodPost, "/v1/exports", s.needCore(s.postExport))
	add(http.MethodPost, "/v1/exports:batch", s.needCore(s.postBatch))
	add(http.MethodGet, "/v1/exports/{id}", s.needCore(s.auth(s.getExport, config.RoleAuditor, config.RoleExporter)))
	add(http.MethodGet, "/v1/checkpoint", s.needCore(s.auth(s.getCheckpoint, all...)))
	add(http.MethodGet, "/v1/status", s.needCore(s.auth(s.getStatus, config.RoleOperator, config.RoleAuditor)))
	add(http.MethodPost, "/v1/seal", s.needCore(s.auth(s.postSeal, config.RoleOperator)))
	add(http.MethodPost, "/v1/policy/reload", s.needCore(s.auth(s.postPolicyReload, config.RoleOperator)))
	add(http.MethodGet, "/healthz", s.healthz)
	add(http.MethodGet, "/readyz", s.readyz)
	for path, methods := range paths {
		allow := strings.Join(methods, ", ")
		if strings.Contains(allow, http.MethodGet) {
			allow += ", " + http.MethodHead
		}
		s.mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Allow", allow)
			s.writeError(w, r, &Error{Status: http.StatusMethodNotAllowed, Code: CodeMethodNotAllowed, Msg: r.Method + " not allowed; use " + allow})
		})
	}
	s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		s.writeError(w, r, &Error{Status: http.StatusNotFound, Code: CodeNotFound, Msg: "no such endpoint"})
	})
}

type coreHandler func(w http.ResponseWriter, r *http.Request, c Core)

// needCore answers 503 not_ready with Retry-After until the core is set
// and once draining began; the calls it lets in are counted for Drain.
func (s *Server) needCore(h coreHandler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s.gate.RLock()
		ref, draining := s.core.Load(), s.drain.Load()
		if ref != nil && !draining {
			s.busy.Add(1)
		}
		s.gate.RUnlock()
		switch {
		case draining:
			s.writeError(w, r, &Error{Status: http.StatusServiceUnavailable, Code: CodeNotReady, RetryAfter: NotReadyRetryAfter, Msg: "the agent is stopping"})
			return
		case ref == nil:
			s.writeError(w, r, &Error{Status: http.StatusServiceUnavailable, Code: CodeNotReady, RetryAfter: NotReadyRetryAfter, Msg: "the agent is starting"})
			return
		}
		defer s.busy.Done()
		h(w, r, ref.c)
	}
}

type authedHandler func(w http.ResponseWriter, r *http.Request, c Core, p *config.Principal)

// auth wants a valid token (401) of a principal holding one of roles (403).
func (s *Server) auth(h authedHandler, roles ...config.Role) coreHandler {
	return func(w http.ResponseWriter, r *http.Request, c Core) {
		p, err := s.authenticate(r)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		for _, role := range roles {
			if p.Has(role) {
				h(w, r, c, p)
				return
			}
		}
		s.writeError(w, r, &agent.ForbiddenError{Principal: p.Name, Role: roles[0]})
	}
}

// authenticate finds the principal of the bearer token, or a 401 *Error.
func (s *Server) authenticate(r *http.Request) (*config.Principal, error) {
	h := r.Header.Get("Authorization")
	if h == "" {
		return nil, &Error{Status: http.StatusUnauthorized, Code: CodeUnauthorized, Msg: "missing bearer token"}
	}
	scheme, tok, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return nil, &Error{Status: http.StatusUnauthorized, Code: CodeUnauthorized, Msg: "want Authorization: Bearer TOKEN"}
	}
	p, ok := s.opts.Principals.Authenticate(strings.TrimSpace(tok))
	if !ok {
		return nil, &Error{Status: http.StatusUnauthorized, Code: CodeUnauthorized, Msg: "invalid bearer token"}
	}
	return p, nil
}

func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	switch {
	case s.drain.Load():
		s.writeError(w, r, &Error{Status: http.StatusServiceUnavailable, Code: CodeNotReady, RetryAfter: NotReadyRetryAfter, Msg: "the agent is stopping"})
	case s.core.Load() == nil:
		s.writeError(w, r, &Error{Status: http.StatusServiceUnavailable, Code: CodeNotReady, RetryAfter: NotReadyRetryAfter, Msg: "the agent is starting"})
	default:
		writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
	}
}
