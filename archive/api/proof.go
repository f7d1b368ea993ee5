package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/edgeseal/edgeseal/archive"
	"github.com/edgeseal/edgeseal/bundle/evidence"
	"github.com/edgeseal/edgeseal/bundle/proof"
	"github.com/edgeseal/edgeseal/bundle/wire"
)

// Bounds of an evidence pack served by the API.
const (
	MaxPackExports = 500     // exports in one pack
	MaxPackBytes   = 2 << 30 // the sum of a pack's file sizes
)

// proofRoutes registers the proof, archive log and evidence endpoints.
func (s *Server) proofRoutes() {
	s.route("GET", "/v1/log/checkpoint", "log.checkpoint", auditorOnly, s.logCheckpoint)
	s.route("GET", "/v1/log/consistency", "log.consistency", auditorOnly, s.logConsistency)
	s.route("GET", "/v1/evidence", "pack", auditorOnly, s.getEvidence)
}

// proofFail maps an error of building a proof to an answer.
func (s *Server) proofFail(err error, t archive.AccessTarget) reply {
	var amb *proof.AmbiguousError
	switch {
	case errors.Is(err, archive.ErrGone):
		rep := errReply(http.StatusGone, "gone", "the bundle's payloads were purged")
		rep.target = t
		return rep
	case errors.As(err, &amb):
		rep := errReply(http.StatusBadRequest, "bad_request", "the export id names exports of several principals: give principal")
		rep.target = t
		return rep
	}
	return s.failReply(err, t)
}

// acceptedExports are the accepted export entries of q (Status set
// here), following pages, at most max; more is a *ParamError.
func (s *Server) acceptedExports(ctx context.Context, q archive.ExportQuery, max int) ([]*archive.ExportEntry, error) {
	q.Status, q.Limit, q.Asc = archive.StatusAccepted, archive.MaxPageLimit, true
	var out []*archive.ExportEntry
	for {
		p, err := s.a.SearchExports(ctx, q)
		if err != nil {
			return nil, err
		}
		for _, e := range p.Items {
			if e.Type == "export" {
				out = append(out, e)
			}
		}
		if len(out) > max {
			return nil, &ParamError{Reason: fmt.Sprintf("the selection holds more than %d exports: narrow it", max)}
		}
		if p.Next == "" {
			return out, nil
		}
		q.Cursor = p.Next
	}
}

// getProof answers GET /v1/exports/{site}/{name}/{id}/proof: the proof of
// the device's first accepted export of that id (of principal, when given).
func (s *Server) getProof(r *http.Request, sess *session) reply {
	device, id, t, err := exportTarget(r)
	if err != nil {
		return s.failReply(err, t)
	}
	t.Query = r.URL.RawQuery
	p, err := parseParams(r.URL.RawQuery, "principal")
	if err != nil {
		return s.failReply(err, t)
	}
	es, err := s.acceptedExports(r.Context(), archive.ExportQuery{Device: device, Export: id, Principal: p["principal"]}, 1000)
	if err != nil {
		return s.failReply(err, t)
	}
	if len(es) == 0 {
		rep := errReply(http.StatusNotFound, "not_found", "no accepted export of this id on this device")
		rep.target = t
		return rep
	}
	e := es[0]
	t.Bundle = e.Bundle
	pr, _, err := s.a.ExportProof(r.Context(), e)
	if err != nil {
		return s.proofFail(err, t)
	}
	raw, err := pr.Marshal()
	if err != nil {
		return s.failReply(err, t)
	}
	return reply{outcome: outcomeOK, target: t, write: func(w http.ResponseWriter) {
		h := w.Header()
		h.Set("Content-Type", "application/json")
		h.Set("Content-Length", strconv.Itoa(len(raw)))
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(raw)
	}}
}

func (s *Server) logCheckpoint(r *http.Request, sess *session) reply {
	t := queryTarget(r)
	if _, err := parseParams(r.URL.RawQuery); err != nil {
		return s.failReply(err, t)
	}
	signed, err := s.a.Checkpoint(r.Context())
	if err != nil {
		return s.failReply(err, t)
	}
	return reply{outcome: outcomeOK, target: t, write: func(w http.ResponseWriter) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(signed)
	}}
}

// consistencyJSON is the answer of GET /v1/log/consistency.
type consistencyJSON struct {
	From  uint64   `json:"from"`
	To    uint64   `json:"to"`
	Proof []string `json:"proof"`
}

// parseSizes reads from and to of GET /v1/log/consistency.
func parseSizes(raw string) (from, to uint64, err error) {
	p, err := parseParams(raw, "from", "to")
	if err != nil {
		return 0, 0, err
	}
	for _, c := range []struct {
		name string
		n    *uint64
	}{{"from", &from}, {"to", &to}} {
		v, ok := p[c.name]
		n, perr := strconv.ParseUint(v, 10, 63)
		if !ok || perr != nil || strconv.FormatUint(n, 10) != v || n == 0 {
			return 0, 0, &ParamError{Name: c.name, Reason: "a positive integer is required"}
		}
		*c.n = n
	}
	if from > to {
		return 0, 0, &ParamError{Name: "to", Reason: "less than from"}
	}
	return from, to, nil
}

func (s *Server) logConsistency(r *http.Request, sess *session) reply {
	t := queryTarget(r)
	from, to, err := parseSizes(r.URL.RawQuery)
	if err != nil {
		return s.failReply(err, t)
	}
	hs, err := s.a.LogConsistency(r.Context(), from, to)
	if err != nil {
		return s.failReply(err, t)
	}
	out := consistencyJSON{From: from, To: to, Proof: []string{}}
	for _, h := range hs {
		out.Proof = append(out.Proof, wire.FormatHash(h))
	}
	return jsonReply(t, out)
}

// evidenceQuery is what GET /v1/evidence selects.
type evidenceQuery struct {
	q         archive.ExportQuery
	selection string
	decrypt   decryptAsk // decrypt=1 with a reason (or the case selected)
}

// parseEvidenceQuery reads GET /v1/evidence: export (with device and
// principal narrowing it), device with from and to, or case (with
// device, principal, from and to narrowing it, in the index's query).
func parseEvidenceQuery(raw string) (evidenceQuery, error) {
	var eq evidenceQuery
	p, err := parseParams(raw, "export", "device", "principal", "from", "to", "case", "decrypt", "reason")
	if err != nil {
		return eq, err
	}
	if eq.decrypt, err = parseDecrypt(p, "case"); err != nil {
		return eq, err
	}
	q := &eq.q
	q.Export, q.Device, q.Principal, q.Case = p["export"], p["device"], p["principal"], p["case"]
	if q.Device != "" {
		if err := checkDevice("device", q.Device); err != nil {
			return eq, err
		}
	}
	if q.From, q.To, err = p.timeRange(); err != nil {
		return eq, err
	}
	byTime := !q.From.IsZero() || !q.To.IsZero()
	modes := 0
	byCase := q.Case != ""
	if byCase {
		byTime = false // narrows the case
	}
	for _, set := range []bool{q.Export != "", byTime, byCase} {
		if set {
			modes++
		}
	}
	switch {
	case modes != 1:
		return eq, &ParamError{Reason: "want one of export=ID, device=D&from=T&to=T, case=ID (device, principal, from, to narrow it)"}
	case byTime && (q.Device == "" || q.From.IsZero() || q.To.IsZero()):
		return eq, &ParamError{Name: "device", Reason: "device, from and to go together"}
	case q.Export != "":
		eq.selection = "export(s) " + q.Export
	case byTime:
		eq.selection = fmt.Sprintf("device %s from %s to %s", q.Device, wire.FormatTime(q.From), wire.FormatTime(q.To))
	default:
		eq.selection = "legal-hold case " + q.Case + caseNarrowing(q)
	}
	return eq, nil
}

// caseWait bounds how long a search by case waits for the export index
// to cover the archive log as it is (so that a hold just logged counts).
const caseWait = 2 * time.Second

// awaitIndex waits, at most caseWait, for the export index to cover the
// archive log; past that the search answers from the index as it is.
func (s *Server) awaitIndex(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, caseWait)
	defer cancel()
	_ = s.a.WaitIndexed(ctx, s.a.LogSize())
}

// caseNarrowing describes the device, principal and time range that
// narrow a case's selection.
func caseNarrowing(q *archive.ExportQuery) string {
	var b strings.Builder
	if q.Device != "" {
		b.WriteString(" device " + q.Device)
	}
	if q.Principal != "" {
		b.WriteString(" principal " + q.Principal)
	}
	if !q.From.IsZero() {
		b.WriteString(" from " + wire.FormatTime(q.From))
	}
	if !q.To.IsZero() {
		b.WriteString(" to " + wire.FormatTime(q.To))
	}
	return b.String()
}

// getEvidence answers GET /v1/evidence: the evidence pack of the exports
// selected, built with bundle/evidence (archive checkpoints with their
// consistency proofs), as a tar of the pack's files.
func (s *Server) getEvidence(r *http.Request, sess *session) reply {
	t := queryTarget(r)
	eq, err := parseEvidenceQuery(r.URL.RawQuery)
	if err != nil {
		return s.failReply(err, t)
	}
	t.Device, t.Export = eq.q.Device, eq.q.Export
	if eq.q.Case != "" {
		s.awaitIndex(r.Context())
	}
	es, err := s.acceptedExports(r.Context(), eq.q, MaxPackExports)
	if err != nil {
		return s.failReply(err, t)
	}
	if len(es) == 0 {
		rep := errReply(http.StatusNotFound, "not_found", "no accepted export of "+eq.selection)
		rep.target = t
		return rep
	}
	if len(es) == 1 {
		t.Device, t.Export, t.Bundle = es[0].Device, es[0].Export, es[0].Bundle
	}
	in := evidence.Input{Selection: eq.selection, Requester: sess.user, Now: s.opts.Now(), Consistency: s.a.LogConsistency}
	var total int64 // the payloads' sizes, as indexed, bound the pack before it is built
	for _, e := range es {
		if e.Payload != nil {
			total += e.Payload.Size
		}
	}
	if eq.decrypt.on {
		total *= 2 // the ciphertexts and their plaintexts
	}
	if total > MaxPackBytes {
		return s.failReply(&ParamError{Reason: fmt.Sprintf("the pack would exceed %d bytes: narrow the selection", int64(MaxPackBytes))}, t)
	}
	if in.Proofs, in.Policies, err = s.a.ExportProofs(r.Context(), es); err != nil {
		return s.proofFail(err, t)
	}
	if eq.decrypt.on {
		pts, refused := s.decryptProofs(r, sess, eq.decrypt, es, in.Proofs)
		if refused != nil {
			rep := *refused
			rep.target, rep.decrypt = t, nil // the pack's own entry; the decrypt entries are appended
			return rep
		}
		in.Plaintexts = pts
		why := eq.decrypt.reason
		if eq.decrypt.caseID != "" {
			why = strings.TrimSpace("case " + eq.decrypt.caseID + " " + why)
		}
		for i, e := range es {
			if pts[i] == nil {
				continue // not encrypted
			}
			in.Accesses = append(in.Accesses, evidence.Access{Time: in.Now, Actor: sess.user, Action: "decrypt", Target: e.Device + ":" + e.Principal + ":" + e.Export, Detail: why})
		}
	}
	pack, err := evidence.Build(r.Context(), in)
	if err != nil {
		return s.failReply(err, t)
	}
	return reply{outcome: outcomeOK, target: t, write: func(w http.ResponseWriter) {
		h := w.Header()
		h.Set("Content-Type", "application/x-tar")
		h.Set("Content-Disposition", `attachment; filename="evidence.tar"`)
		w.WriteHeader(http.StatusOK)
		_ = pack.WriteTar(w, in.Now)
	}}
}
