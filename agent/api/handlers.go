package api

import (
	"errors"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"strings"

	"github.com/edgeseal/edgeseal/agent"
	"github.com/edgeseal/edgeseal/agent/config"
	"github.com/edgeseal/edgeseal/bundle/custody"
	"github.com/edgeseal/edgeseal/bundle/wire"
)

// exportPrincipal authenticates an export call. A refusal (401) is
// journaled as export.rejected (within the caps of unauthenticated) and
// answered; ok is false.
func (s *Server) exportPrincipal(w http.ResponseWriter, r *http.Request, c Core) (*config.Principal, bool) {
	p, err := s.authenticate(r)
	if err == nil {
		return p, true
	}
	var ae *Error
	if !errors.As(err, &ae) {
		s.writeError(w, r, err)
		return nil, false
	}
	s.unauthenticated(w, r, c, ae)
	return nil, false
}

// reject journals a refused attempt of an authenticated principal and
// answers it.
func (s *Server) reject(w http.ResponseWriter, r *http.Request, c Core, p *config.Principal, req agent.IngestRequest, cause error) {
	actor := custody.Actor{Kind: "principal", ID: p.Name, Via: s.opts.Via}
	s.writeError(w, r, c.Reject(r.Context(), actor, req, cause))
}

// POST /v1/exports
func (s *Server) postExport(w http.ResponseWriter, r *http.Request, c Core) {
	p, ok := s.exportPrincipal(w, r, c)
	if !ok {
		return
	}
	if !p.Has(config.RoleExporter) {
		// The core journals the refusal with the metadata the headers give.
		_, err := c.Ingest(r.Context(), p, s.opts.Via, partialFromHeaders(r.Header))
		s.writeError(w, r, err)
		return
	}
	// The body is held from here until the core has journaled it.
	share := s.inflightShare(r)
	if err := s.bodies.acquire(share); err != nil {
		s.writeError(w, r, err)
		return
	}
	defer s.bodies.release(share)
	req, err := s.decodeOne(w, r)
	if err != nil {
		s.reject(w, r, c, p, req, err)
		return
	}
	rc, err := c.Ingest(r.Context(), p, s.opts.Via, req)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	status := http.StatusCreated
	if rc.Duplicate {
		status = http.StatusOK
	}
	w.Header().Set("Location", "/v1/exports/"+url.PathEscape(rc.ExportID))
	writeReceipt(w, status, &rc)
}

// decodeOne reads one export in either form. On error the returned
// request holds what is known (for the rejection record).
func (s *Server) decodeOne(w http.ResponseWriter, r *http.Request) (agent.IngestRequest, error) {
	partial := partialFromHeaders(r.Header)
	raw := r.Header.Get(HeaderWorkflow) != ""
	if !raw {
		base, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
		if err != nil || base != "application/json" {
			return partial, unsupported("send application/json (the JSON envelope), or the payload with its Content-Type and Edgeseal-Workflow and the other Edgeseal-* headers")
		}
	}
	var req agent.IngestRequest
	var err error
	if raw {
		if req, err = DecodeHeaders(r.Header); err != nil {
			return partial, err
		}
	}
	body, err := readBody(http.MaxBytesReader(w, r.Body, s.opts.MaxBody), r.ContentLength, s.opts.MaxBody)
	if err != nil {
		return partial, err
	}
	if raw {
		req.Data = body
		return req, nil
	}
	req, err = DecodeExport(body)
	if err != nil {
		req.Data = body
		return req, err
	}
	return req, nil
}

// GET /v1/exports/{id}[?principal=NAME]: an export the caller's
// principal sent. An auditor may name any principal, or none: then every
// principal of the config is searched and an id more than one of them
// used answers 409 ambiguous_id. Only the sender sees its refused
// exports. An id the principal did not send, or a principal an exporter
// may not read, answers 404 exactly like an unknown id.
func (s *Server) getExport(w http.ResponseWriter, r *http.Request, c Core, p *config.Principal) {
	id := r.PathValue("id")
	notFound := &agent.NotFoundError{What: "export", ID: id}
	owners := []string{p.Name}
	switch q := r.URL.Query().Get("principal"); {
	case q == p.Name:
	case q != "" && !p.Has(config.RoleAuditor):
		s.writeError(w, r, notFound)
		return
	case q != "":
		owners = []string{q}
	case p.Has(config.RoleAuditor):
		for _, o := range s.opts.Principals {
			if o.Name != p.Name {
				owners = append(owners, o.Name)
			}
		}
	}
	var found []*agent.ExportInfo
	for _, o := range owners {
		info, err := c.ExportStatus(r.Context(), o, id)
		var nf *agent.NotFoundError
		switch {
		case errors.As(err, &nf):
		case err != nil:
			s.writeError(w, r, err)
			return
		case info.Status == agent.StatusRefused && o != p.Name:
			// refusals are shown to their sender only
		default:
			found = append(found, info)
		}
	}
	switch len(found) {
	case 0:
		s.writeError(w, r, notFound)
	case 1:
		writeJSON(w, http.StatusOK, found[0])
	default:
		names := make([]string, len(found))
		for i, f := range found {
			names[i] = f.Principal
		}
		s.writeError(w, r, &Error{Status: http.StatusConflict, Code: CodeAmbiguousID,
			Msg: fmt.Sprintf("principals %s each sent an export with this id; name one with ?principal=", strings.Join(names, ", "))})
	}
}

// GET /v1/checkpoint
func (s *Server) getCheckpoint(w http.ResponseWriter, r *http.Request, c Core, _ *config.Principal) {
	cp, err := c.Checkpoint()
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, cp)
}

// GET /v1/status
func (s *Server) getStatus(w http.ResponseWriter, r *http.Request, c Core, _ *config.Principal) {
	st, err := c.Status(r.Context())
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, st)
}

// SealAnswer answers POST /v1/seal.
type SealAnswer struct {
	Sealed     bool                  `json:"sealed"` // false: nothing was pending
	Checkpoint *agent.CheckpointInfo `json:"checkpoint,omitempty"`
	Records    int                   `json:"records,omitempty"`
	Counter    uint64                `json:"counter,omitempty"`
	Bundle     string                `json:"bundle,omitempty"` // outbox id
	Digest     string                `json:"digest,omitempty"`
}

// POST /v1/seal
func (s *Server) postSeal(w http.ResponseWriter, r *http.Request, c Core, p *config.Principal) {
	res, err := c.Seal(r.Context())
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if res == nil {
		writeJSON(w, http.StatusOK, SealAnswer{})
		return
	}
	s.log.Info("sealed on request", "principal", p.Name, "size", res.Checkpoint.Size)
	cp := res.Checkpoint
	writeJSON(w, http.StatusOK, SealAnswer{
		Sealed:     true,
		Checkpoint: &agent.CheckpointInfo{Origin: cp.Origin, Size: cp.Size, Root: wire.FormatHash(cp.Root), Text: string(cp.Marshal())},
		Records:    res.Records, Counter: res.Counter, Bundle: res.ID, Digest: wire.FormatHash(res.Digest),
	})
}
