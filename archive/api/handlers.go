package api

import (
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"strconv"
	"strings"

	"github.com/edgeseal/edgeseal/archive"
	"github.com/edgeseal/edgeseal/bundle"
	"github.com/edgeseal/edgeseal/bundle/custody"
	"github.com/edgeseal/edgeseal/bundle/wire"
)

var (
	anyRole      = []string{RoleAuditor, RoleOperator, RolePolicyAdmin}
	auditorOnly  = []string{RoleAuditor}
	auditorOrOps = []string{RoleAuditor, RoleOperator}
)

func (s *Server) routes() {
	s.mux.HandleFunc("GET /v1/healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]bool{"ok": true})
	})
	s.mux.HandleFunc("POST /v1/session", s.signIn)
	s.route("GET", "/v1/session", "session.get", anyRole, s.getSession)
	s.mux.HandleFunc("DELETE /v1/session", s.signOut)
	s.route("GET", "/v1/exports", "exports.search", auditorOrOps, s.searchExports)
	s.route("GET", "/v1/exports/{site}/{name}/{id}", "export.get", auditorOnly, s.getExport)
	s.route("GET", "/v1/exports/{site}/{name}/{id}/payload", "export.payload", auditorOnly, s.getPayload)
	s.route("GET", "/v1/exports/{site}/{name}/{id}/proof", "export.proof", auditorOnly, s.getProof)
	s.route("GET", "/v1/bundles/{digest}", "bundle.get", auditorOnly, s.getBundle)
	s.route("GET", "/v1/bundles/{digest}/receipt", "bundle.receipt", auditorOnly, s.getReceipt)
	s.route("GET", "/v1/devices", "devices.list", anyRole, s.listDevices)
	s.route("GET", "/v1/stats", "stats.get", anyRole, s.getStats)
	s.route("GET", "/v1/access", "access.search", auditorOnly, s.searchAccess)
	s.route("GET", "/v1/access/checkpoint", "access.checkpoint", auditorOnly, s.accessCheckpoint)
	s.route("GET", "/v1/access/proof", "access.proof", auditorOnly, s.accessProof)
	s.route("GET", "/v1/events", "events.open", anyRole, s.events)
	s.proofRoutes()
	s.logRoutes()
	if s.opts.OIDC != nil {
		s.mux.HandleFunc("GET /v1/oidc/login", s.oidcLogin)
		s.mux.HandleFunc("GET /v1/oidc/callback", s.oidcCallback)
	}
	s.mux.HandleFunc("/v1/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "not_found", "no such endpoint")
	})
}

// pageJSON is a page as the API writes it.
type pageJSON[T any] struct {
	Items []T    `json:"items"`
	Next  string `json:"next,omitempty"`
}

func queryTarget(r *http.Request) archive.AccessTarget {
	return archive.AccessTarget{Query: r.URL.RawQuery}
}

func (s *Server) searchExports(r *http.Request, sess *session) reply {
	t := queryTarget(r)
	q, err := parseExportQuery(r.URL.RawQuery)
	if err != nil {
		return s.failReply(err, t)
	}
	t.Device, t.Export, t.Bundle = q.Device, q.Export, q.Bundle
	if q.Case != "" {
		s.awaitIndex(r.Context())
	}
	p, err := s.a.SearchExports(r.Context(), q)
	if err != nil {
		return s.failReply(err, t)
	}
	if p.Items == nil {
		p.Items = []*archive.ExportEntry{}
	}
	return jsonReply(t, pageJSON[*archive.ExportEntry]{Items: p.Items, Next: p.Next})
}

// exportTarget reads {site}/{name}/{id}.
func exportTarget(r *http.Request) (device, id string, t archive.AccessTarget, err error) {
	site, name, id := r.PathValue("site"), r.PathValue("name"), r.PathValue("id")
	for _, c := range [][2]string{{"site", site}, {"name", name}, {"id", id}} {
		if err := checkPathSegment(c[0], c[1]); err != nil {
			return "", "", t, err
		}
	}
	device = site + "/" + name
	return device, id, archive.AccessTarget{Device: device, Export: id}, nil
}

type exportJSON struct {
	Entry  *archive.ExportEntry `json:"entry"`
	Record json.RawMessage      `json:"record"`
	Others int                  `json:"others"`
	// Encrypted: the agent sealed the payload to the archive's content
	// key (it is stored and served as ciphertext).
	Encrypted bool `json:"encrypted,omitempty"`
	// MayDecrypt: the session's roles may decrypt this export's
	// classification (api.decrypt), so a payload asked with decrypt=1
	// and a why would be decrypted. A hint for clients (the dashboard
	// offers its Decrypt action by it): the payload call decides again.
	MayDecrypt bool `json:"mayDecrypt,omitempty"`
}

func (s *Server) getExport(r *http.Request, sess *session) reply {
	device, id, t, err := exportTarget(r)
	if err != nil {
		return s.failReply(err, t)
	}
	e, rec, others, err := s.a.Export(r.Context(), device, id)
	if err != nil {
		return s.failReply(err, t)
	}
	t.Bundle = e.Bundle
	out := exportJSON{Entry: e, Record: rec, Others: others}
	if _, sealed, ok, err := custody.RecordPayloadFile(rec); err == nil && ok && sealed {
		out.Encrypted = true
		out.MayDecrypt, _ = s.opts.Decrypt.allows(sess, e.Classification)
		out.MayDecrypt = out.MayDecrypt && e.Payload != nil && sess.has(RoleAuditor)
	}
	return jsonReply(t, out)
}

func (s *Server) getPayload(r *http.Request, sess *session) reply {
	device, id, t, err := exportTarget(r)
	if err != nil {
		return s.failReply(err, t)
	}
	p, err := parseParams(r.URL.RawQuery, "decrypt", "case", "reason")
	if err != nil {
		return s.failReply(err, t)
	}
	ask, err := parseDecrypt(p, "case")
	if err != nil {
		return s.failReply(err, t)
	}
	var dw *archive.AccessDecrypt
	if ask.on {
		d := ask.entry()
		dw = &d
	}
	fail := func(rep reply) reply {
		if dw != nil && rep.decrypt == nil {
			d := *dw
			d.Refused = rep.outcome
			rep.decrypt = &d
		}
		return rep
	}
	e, rec, _, err := s.a.Export(r.Context(), device, id)
	if err != nil {
		return fail(s.failReply(err, t))
	}
	t.Bundle = e.Bundle
	if dw != nil {
		dw.Classification = e.Classification
		if ok, why := s.opts.Decrypt.allows(sess, e.Classification); !ok {
			dw.Refused = why
			rep := errReply(http.StatusForbidden, "forbidden", why)
			rep.target, rep.decrypt = t, dw
			return rep
		}
	}
	if e.Payload == nil {
		rep := errReply(http.StatusNotFound, "not_found", "a refused export has no payload")
		rep.target = t
		return fail(rep)
	}
	// The payload's file: named by the plaintext's digest, or by the
	// ciphertext's (".hpke") when the agent sealed it.
	fd, sealed, ok, err := custody.RecordPayloadFile(rec)
	if err != nil || !ok {
		return fail(s.failReply(fmt.Errorf("export record: %v", err), t))
	}
	bd, err := wire.ParseHash(e.Bundle)
	if err != nil {
		return fail(s.failReply(err, t))
	}
	raw, err := s.a.Objects().Get(r.Context(), bd)
	if errors.Is(err, archive.ErrNotFound) {
		rep := errReply(http.StatusGone, "gone", "the bundle's payloads were purged")
		rep.target = t
		return fail(rep)
	}
	if err != nil {
		return fail(s.failReply(err, t))
	}
	b, err := bundle.ReadBytes(raw, s.a.BundleLimits())
	if err != nil {
		return fail(s.failReply(err, t))
	}
	path := bundle.PayloadPath(fd)
	if sealed {
		path += bundle.EncryptedPayload
	}
	data, present := b.Files[path]
	if !present {
		rep := errReply(http.StatusGone, "gone", "the payload was purged")
		rep.target = t
		return fail(rep)
	}
	var decrypted bool
	if dw != nil {
		if !sealed {
			return fail(s.decryptFail(archive.ErrNotEncrypted, t, *dw))
		}
		dec, err := s.a.DecryptExport(rec, data)
		if err != nil {
			return s.decryptFail(err, t, *dw)
		}
		d := dec.Entry
		d.Case, d.Reason = dw.Case, dw.Reason
		dw, data, sealed, decrypted = &d, dec.Plaintext, false, true
	}
	ct := e.Payload.MediaType
	if _, _, err := mime.ParseMediaType(ct); err != nil || ct == "" || sealed {
		ct = "application/octet-stream"
	}
	return reply{outcome: outcomeOK, target: t, decrypt: dw, write: func(w http.ResponseWriter) {
		h := w.Header()
		h.Set("Content-Type", ct)
		h.Set("Content-Disposition", `attachment; filename="`+strings.TrimPrefix(e.Payload.Digest, "sha256:")+`"`)
		h.Set("X-Edgeseal-Digest", e.Payload.Digest)
		if sealed {
			h.Set("X-Edgeseal-Sealed", "hpke")
		}
		if decrypted {
			h.Set("X-Edgeseal-Decrypted", "1")
		}
		h.Set("Content-Length", strconv.Itoa(len(data)))
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(data)
	}}
}

func bundleTarget(r *http.Request) ([32]byte, archive.AccessTarget, error) {
	name, d, err := parseDigest("digest", r.PathValue("digest"))
	return d, archive.AccessTarget{Bundle: name}, err
}

func (s *Server) getBundle(r *http.Request, sess *session) reply {
	d, t, err := bundleTarget(r)
	if err != nil {
		return s.failReply(err, t)
	}
	if _, err := s.a.Receipt(d); err != nil {
		return s.failReply(err, t)
	}
	raw, err := s.a.Objects().Get(r.Context(), d)
	if errors.Is(err, archive.ErrNotFound) {
		rep := errReply(http.StatusGone, "gone", "the bundle was purged")
		rep.target = t
		return rep
	}
	if err != nil {
		return s.failReply(err, t)
	}
	if sha256.Sum256(raw) != d {
		return s.failReply(errors.New("stored bundle does not match its digest"), t)
	}
	return reply{outcome: outcomeOK, target: t, write: func(w http.ResponseWriter) {
		h := w.Header()
		h.Set("Content-Type", "application/x-tar")
		h.Set("Content-Disposition", `attachment; filename="`+strings.TrimPrefix(t.Bundle, "sha256:")+`.tar"`)
		h.Set("Content-Length", strconv.Itoa(len(raw)))
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(raw)
	}}
}

func (s *Server) getReceipt(r *http.Request, sess *session) reply {
	d, t, err := bundleTarget(r)
	if err != nil {
		return s.failReply(err, t)
	}
	rc, err := s.a.Receipt(d)
	if err != nil {
		return s.failReply(err, t)
	}
	return reply{outcome: outcomeOK, target: t, write: func(w http.ResponseWriter) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(rc)
	}}
}
