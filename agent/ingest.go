package agent

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/edgeseal/edgeseal/agent/config"
	"github.com/edgeseal/edgeseal/agent/policy"
	"github.com/edgeseal/edgeseal/bundle/custody"
	"github.com/edgeseal/edgeseal/bundle/merkle"
	"github.com/edgeseal/edgeseal/bundle/wire"
	"github.com/edgeseal/edgeseal/store"
)

// Limits on the metadata of an export.
const (
	MaxExportIDLen = 128  // client-supplied export ids
	MaxFieldLen    = 1024 // app, workflow, purpose, ... in bytes
	maxReasonLen   = 1024 // reason text kept in an export.rejected record
)

// IngestRequest is one export as a caller hands it over: the API, the spool
// folder or a test.
type IngestRequest struct {
	// ID is the client's export id, scoped by principal (see ExportKey);
	// empty: the core generates one (128 random bits, hex). A repeated id
	// is never journaled twice: with the same workflow and payload the
	// repeat is answered with the original receipt (Duplicate set), else
	// refused as an *IDConflictError.
	ID             string
	Workflow       string
	App            string
	Purpose        string
	Schema         string // "name@version"; empty takes the workflow's
	Classification string
	Retention      string // empty takes the workflow's
	Destination    string
	MediaType      string // e.g. "application/json", "text/csv"
	Data           []byte
}

// BatchLine is one line of a batch: a decoded request, or the error that
// kept it from being decoded (the line is then journaled as rejected with
// that reason).
type BatchLine struct {
	Req IngestRequest
	Err error
}

// BatchResult answers one line of a batch: a receipt, or an error (a
// *RejectedError when the line was refused and its rejection journaled).
type BatchResult struct {
	Receipt ExportReceipt
	Err     error
}

// ForbiddenError: the principal lacks the role the action needs.
type ForbiddenError struct {
	Principal string
	Role      config.Role
}

func (e *ForbiddenError) Error() string {
	return fmt.Sprintf("agent: principal %q lacks the %s role", e.Principal, e.Role)
}

// RejectedError is an export refused and journaled as export.rejected.
// Err is the reason: a *policy.Violation, *FieldError, *ForbiddenError,
// *IDConflictError or
// whatever error the caller passed to Reject (errors.As sees through).
type RejectedError struct {
	ExportID string
	Seq      uint64 // sequence number of the export.rejected record
	Leaf     string // its leaf hash, "sha256:..."
	Err      error
}

func (e *RejectedError) Error() string {
	return fmt.Sprintf("agent: export %s rejected (journaled at %d): %v", e.ExportID, e.Seq, e.Err)
}

func (e *RejectedError) Unwrap() error { return e.Err }

// NewExportID returns a fresh export id: 128 random bits in hex.
func NewExportID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand)
	return hex.EncodeToString(b[:])
}

// Ingest checks one export against the principal's roles and the policy
// and journals it, returning the receipt once the record is durable. A
// refused export is journaled as export.rejected (without its payload)
// and answered with a *RejectedError wrapping the reason: *ForbiddenError
// (the principal is no exporter), *FieldError (bad metadata) or
// *policy.Violation. An export id the principal used before answers the
// original receipt with Duplicate set and journals nothing when the
// workflow and payload digest are the same, and is refused with an
// *IDConflictError (journaled) when not. Other errors come from the
// journal (*store.BusyError, *store.SpaceError when the disk is nearly
// full, ENOSPC, ...); then nothing was journaled.
func (c *Core) Ingest(ctx context.Context, p *config.Principal, via string, req IngestRequest) (ExportReceipt, error) {
	res, err := c.IngestBatch(ctx, p, via, []BatchLine{{Req: req}})
	if err != nil {
		return ExportReceipt{}, err
	}
	return res[0].Receipt, res[0].Err
}

// IngestBatch is Ingest for many exports in one durable commit (or, when
// they do not fit one, in as few consecutive commits as they need),
// answered per line once all are durable (results aligned with lines).
// Rejected lines are journaled with the others. An error is for the whole
// batch: nothing, or when it split, only earlier parts were journaled;
// retrying with the same ids is safe.
//
// Export ids are scoped by principal (see ExportKey): a repeat of an id
// by its principal with the same workflow and payload digest is answered
// with the original receipt (Duplicate set); with another workflow or
// payload it is refused with an *IDConflictError and journaled as
// export.rejected. Another principal's ids are never seen.
func (c *Core) IngestBatch(ctx context.Context, p *config.Principal, via string, lines []BatchLine) ([]BatchResult, error) {
	c.pol.mu.RLock() // no policy change between the check and the journal
	defer c.pol.mu.RUnlock()
	pol := c.policy()
	if pol == nil {
		return nil, &ConfigError{Key: "policy", Reason: "the core has no policy; ingest needs one"}
	}
	if via == "" {
		via = "api"
	}
	actor := custody.Actor{Kind: "principal", ID: "anonymous", Via: via}
	if p != nil {
		actor.ID = p.Name
	}

	type pending struct {
		entry    int // index in entries, -1: none
		sameAs   int // index of an earlier line with the same id, -1: none
		rejected error
		id       string
		digest   string
	}
	// One read transaction for the batch's lookups (legacy ids, refusal
	// keys) instead of one each, opened by the first lookup: ids the core
	// generates need none.
	snap := &lazySnapshot{j: c.j}
	defer snap.Close()
	out := make([]BatchResult, len(lines))
	plan := make([]pending, len(lines))
	entries := make([]store.Entry, 0, len(lines))
	files := make([]payloadFile, 0, len(lines)) // aligned with entries
	firstLine := map[string]int{}               // accepted ids in this batch
	refused := map[string]bool{}                // refusal keys taken in this batch
	answered := make([]bool, len(lines))
	for i, l := range lines {
		pl := &plan[i]
		pl.entry, pl.sameAs = -1, -1
		req := l.Req
		pl.id = req.ID
		var look keyLookup = snap
		if pl.id == "" {
			pl.id, look = NewExportID(), freshID{}
		}
		var cause error
		switch {
		case l.Err != nil:
			cause = l.Err
		case p == nil || !p.Has(config.RoleExporter):
			cause = &ForbiddenError{Principal: actor.ID, Role: config.RoleExporter}
		default:
			cause = checkRequest(req)
		}
		if cause == nil {
			cause = pol.Check(policy.Request{
				Principal: p.Name, Workflow: req.Workflow, App: req.App, Schema: req.Schema,
				Classification: req.Classification, Retention: req.Retention, Destination: req.Destination,
				MediaType: req.MediaType, Size: int64(len(req.Data)), Data: req.Data,
			})
		}
		d := sha256.Sum256(req.Data)
		pl.digest = wire.FormatHash(d)
		if cause == nil {
			if k, ok := firstLine[pl.id]; ok {
				first := original{principal: p.Name, workflow: lines[k].Req.Workflow, digest: plan[k].digest}
				if cause = first.conflict(pl.id, req.Workflow, pl.digest); cause == nil {
					pl.sameAs = k
					continue
				}
			}
		}
		if _, fresh := look.(freshID); cause == nil && !fresh {
			// An id journaled before ids were scoped stays its principal's.
			o, ok, err := c.legacyExport(look, pl.id)
			if err != nil {
				return nil, err
			}
			if ok && o.principal == p.Name {
				if cause = o.conflict(pl.id, req.Workflow, pl.digest); cause == nil {
					out[i].Receipt, out[i].Err = c.originalReceipt(o.seq)
					answered[i] = true
					firstLine[pl.id] = i
					continue
				}
			}
		}
		if cause != nil {
			pl.rejected = cause
			pl.entry = len(entries)
			entries = append(entries, c.rejectEntry(actor, pl.id, req, cause, c.refusedKey(look, actor, pl.id, refused)))
			files = append(files, noPayloadFile)
			continue
		}
		firstLine[pl.id] = i
		pl.entry = len(entries)
		e, file := c.exportEntry(actor, p.Name, pl.id, req, d)
		entries, files = append(entries, e), append(files, file)
	}

	snap.Close()
	res, perEntry, err := c.appendSplit(ctx, entries)
	if err != nil {
		return nil, err
	}
	for k := range res {
		if perEntry == nil || perEntry[k] == nil {
			c.cache.addFile(res[k], entries[k].Payloads, files[k])
		}
	}
	// late are lines refused only once the journal answered: an id whose
	// key proved taken with other data, or a refusal whose key another
	// request took first; they are journaled in a second commit.
	var late []int
	var last uint64
	for i := range lines {
		pl := &plan[i]
		if pl.entry < 0 {
			continue
		}
		var eerr error
		if perEntry != nil {
			eerr = perEntry[pl.entry]
		}
		a := res[pl.entry]
		var dup *store.DuplicateError
		switch {
		case eerr != nil && errors.As(eerr, &dup) && pl.rejected == nil:
			o, err := c.readOriginal(dup.Seq)
			if err != nil {
				out[i].Err = err
				continue
			}
			if pl.rejected = o.conflict(pl.id, lines[i].Req.Workflow, pl.digest); pl.rejected == nil {
				out[i].Receipt, out[i].Err = c.originalReceipt(dup.Seq)
				continue
			}
			late = append(late, i)
		case eerr != nil && errors.As(eerr, &dup):
			late = append(late, i) // the refusal key was taken: journal it without
		case eerr != nil:
			out[i].Err = fmt.Errorf("agent: journal export %s: %w", pl.id, eerr)
		case pl.rejected != nil:
			out[i].Err = &RejectedError{ExportID: pl.id, Seq: a.Seq, Leaf: wire.FormatHash(a.Leaf), Err: pl.rejected}
			c.obs.ExportRejected(RejectReason(pl.rejected))
			last = max(last, a.Size)
		default:
			out[i].Receipt = ExportReceipt{ExportID: pl.id, Seq: a.Seq, Leaf: wire.FormatHash(a.Leaf), Size: a.Size, Digest: pl.digest}
			c.obs.ExportAccepted()
			last = max(last, a.Size)
		}
	}
	if len(late) > 0 {
		rejs := make([]rejection, len(late))
		for k, i := range late {
			rejs[k] = rejection{id: plan[i].id, req: lines[i].Req, cause: plan[i].rejected}
		}
		errs, size, err := c.journalRejections(ctx, actor, rejs, refused)
		if err != nil {
			return nil, err
		}
		for k, i := range late {
			out[i].Err = errs[k]
		}
		last = max(last, size)
	}
	for i := range lines {
		if k := plan[i].sameAs; k >= 0 && !answered[i] {
			out[i] = out[k]
			if out[i].Err == nil {
				out[i].Receipt.Duplicate = true
			}
		}
	}
	if last > 0 {
		c.maybeWake(last)
	}
	return out, nil
}

// Reject journals an export.rejected record for an attempt refused before
// it reached the policy (no valid token, a body that does not decode) and
// returns a *RejectedError wrapping cause, or the journal's error. The
// first refusal of an id a principal sent can be looked up by that
// principal (ExportStatus answers StatusRefused).
func (c *Core) Reject(ctx context.Context, actor custody.Actor, req IngestRequest, cause error) error {
	if c.policy() == nil {
		return &ConfigError{Key: "policy", Reason: "the core has no policy; ingest needs one"}
	}
	id := req.ID
	if id == "" || checkID(id) != nil {
		id = NewExportID()
	}
	errs, size, err := c.journalRejections(ctx, actor, []rejection{{id: id, req: req, cause: cause}}, nil)
	if err != nil {
		return err
	}
	if size > 0 {
		c.maybeWake(size)
	}
	return errs[0]
}

// exportEntry builds the journal entry of an accepted export, keyed by its
// id so it is journaled at most once, and says which payload file its
// record names.
func (c *Core) exportEntry(actor custody.Actor, principal, id string, req IngestRequest, d [32]byte) (store.Entry, payloadFile) {
	pol := c.policy()
	wf, _ := pol.Workflow(req.Workflow)
	if req.Schema == "" {
		req.Schema = wf.Schema
	}
	if req.Retention == "" {
		req.Retention = wf.Retention
	}
	body := custody.ExportBody{
		ExportID: id, App: req.App, Workflow: req.Workflow, Purpose: req.Purpose,
		Schema: req.Schema, Classification: req.Classification, Retention: req.Retention,
		Destination: req.Destination, Policy: pol.Digest(),
		Payload: custody.PayloadRef{Digest: wire.FormatHash(d), Size: int64(len(req.Data)), MediaType: req.MediaType, Canonicalization: "none"},
	}
	payload := store.Payload{Digest: d, Data: req.Data}
	encrypted := false
	if k := c.content.Load(); k != nil && pol.Encrypt(req.Workflow, req.Classification) {
		ct, err := custody.EncryptPayload(&body, c.device, c.sealer, k.Key, req.Data)
		if err != nil {
			return store.Entry{Build: func(uint64, [32]byte) ([]byte, error) { return nil, fmt.Errorf("agent: encrypt payload: %w", err) }}, payloadFile{}
		}
		// Only the ciphertext is journaled, under its own digest; the
		// window's encapsulated key that starts it is journaled once per
		// window, not once per payload.
		payload, encrypted = store.Payload{Digest: cipherDigest(&body, ct), Data: ct, Prefix: windowPrefix(&body, ct)}, true
	}
	e := c.entry(custody.TypeExport, actor, body)
	e.Key = ExportKey(principal, id)
	e.Payloads = []store.Payload{payload}
	return e, payloadFile{known: true, has: true, encrypted: encrypted, digest: payload.Digest}
}

// rejectEntry builds the export.rejected entry: who (actor), what (id,
// app, workflow, payload digest), why (cause). No payload is kept.
func (c *Core) rejectEntry(actor custody.Actor, id string, req IngestRequest, cause error, key []byte) store.Entry {
	body := custody.RejectedBody{
		ExportID: clip(id, MaxExportIDLen*2),
		App:      clip(req.App, MaxFieldLen),
		Workflow: clip(req.Workflow, MaxFieldLen),
		Policy:   c.policy().Digest(),
		Reason:   clip(cause.Error(), maxReasonLen),
	}
	if len(req.Data) > 0 {
		body.Digest = wire.FormatHash(sha256.Sum256(req.Data))
	}
	e := c.entry(custody.TypeExportRejected, actor, body)
	e.Key = key
	return e
}

// entry builds a record entry whose time is taken when it is built, in
// sequence order (stamp).
func (c *Core) entry(typ string, actor custody.Actor, body any) store.Entry {
	// The record is encoded and checked here, on the caller's goroutine;
	// the journal's sequencer only splices in seq, prev and the time,
	// taken in sequence order (stamp).
	r := custody.Record{Type: typ, Time: c.opts.Now(), Device: c.device, Actor: actor}
	var err error
	if eb, ok := body.(custody.ExportBody); ok {
		err = r.SetExportBody(&eb) // the common record: written directly
	} else {
		err = r.SetBody(body)
	}
	var tpl *custody.RecordTemplate
	if err == nil {
		tpl, err = r.Template()
	}
	if err != nil {
		return store.Entry{Build: func(uint64, [32]byte) ([]byte, error) { return nil, err }}
	}
	return store.Entry{Build: func(seq uint64, prev [32]byte) ([]byte, error) {
		return tpl.Build(seq, prev, c.stamp())
	}}
}

// originalReceipt rebuilds the receipt of the export journaled at seq, for
// a repeated id. Its journal size is the size now.
func (c *Core) originalReceipt(seq uint64) (ExportReceipt, error) {
	rec, err := c.j.Record(seq)
	if err != nil {
		return ExportReceipt{}, fmt.Errorf("agent: original export: %w", err)
	}
	r, err := custody.ParseRecord(rec)
	if err != nil {
		return ExportReceipt{}, fmt.Errorf("agent: original export at %d: %w", seq, err)
	}
	body, err := r.ExportBody()
	if err != nil {
		return ExportReceipt{}, fmt.Errorf("agent: original export at %d: %w", seq, err)
	}
	return ExportReceipt{
		ExportID: body.ExportID, Seq: seq, Leaf: wire.FormatHash(merkle.LeafHash(rec)),
		Size: c.j.Size(), Digest: body.Payload.Digest, Duplicate: true,
	}, nil
}

// checkRequest checks the metadata the policy does not: the id's syntax,
// required fields, lengths and printable text.
func checkRequest(r IngestRequest) error {
	if r.ID != "" {
		if err := checkID(r.ID); err != nil {
			return err
		}
	}
	for _, f := range []struct{ name, v string }{
		{"workflow", r.Workflow}, {"app", r.App}, {"purpose", r.Purpose}, {"schema", r.Schema},
		{"classification", r.Classification}, {"retention", r.Retention},
		{"destination", r.Destination}, {"media_type", r.MediaType},
	} {
		if err := CheckField(f.name, f.v); err != nil {
			return err
		}
	}
	switch {
	case r.Workflow == "":
		return &FieldError{Field: "workflow", Reason: "required"}
	case r.App == "":
		return &FieldError{Field: "app", Reason: "required"}
	case r.MediaType == "":
		return &FieldError{Field: "media_type", Reason: "required"}
	}
	return nil
}

func checkID(id string) error {
	if len(id) == 0 || len(id) > MaxExportIDLen {
		return &FieldError{Field: "id", Reason: fmt.Sprintf("want 1 to %d characters", MaxExportIDLen)}
	}
	for i, c := range []byte(id) {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
		if i > 0 {
			ok = ok || c == '.' || c == '_' || c == '-' || c == ':'
		}
		if !ok {
			return &FieldError{Field: "id", Reason: "want [A-Za-z0-9] then [A-Za-z0-9._:-]"}
		}
	}
	return nil
}

// CheckField checks one text field of an export's metadata: valid UTF-8,
// no control characters, at most MaxFieldLen bytes. It returns a
// *FieldError naming name.
func CheckField(name, v string) error {
	if len(v) > MaxFieldLen {
		return &FieldError{Field: name, Reason: fmt.Sprintf("longer than %d bytes", MaxFieldLen)}
	}
	if !utf8.ValidString(v) {
		return &FieldError{Field: name, Reason: "not valid UTF-8"}
	}
	if strings.ContainsFunc(v, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return &FieldError{Field: name, Reason: "contains control characters"}
	}
	return nil
}

// clip makes s valid UTF-8 of at most n bytes, for text kept in a record.
func clip(s string, n int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

// appendSplit journals entries in as few durable commits as fit the
// journal's commit size: a batch too large for one is cut where the
// journal says it went over (TooLargeError.Fit), or halved when it cannot
// say. It returns when every part is durable, with results and per-entry
// errors (nil when none failed) aligned with es.
func (c *Core) appendSplit(ctx context.Context, es []store.Entry) ([]store.Appended, []error, error) {
	res, err := c.j.AppendBatch(ctx, es)
	var tl *store.TooLargeError
	if errors.As(err, &tl) && len(es) > 1 {
		mid := len(es) / 2
		if tl.Fit > 0 && tl.Fit < len(es) {
			mid = tl.Fit
		}
		r1, e1, err := c.appendSplit(ctx, es[:mid])
		if err != nil {
			return nil, nil, err
		}
		r2, e2, err := c.appendSplit(ctx, es[mid:])
		if err != nil {
			return nil, nil, err
		}
		var errs []error
		if e1 != nil || e2 != nil {
			errs = make([]error, len(es))
			copy(errs, e1)
			copy(errs[mid:], e2)
		}
		return append(r1, r2...), errs, nil
	}
	if be := (*store.BatchError)(nil); errors.As(err, &be) {
		return res, be.Errs, nil
	}
	if err != nil {
		return nil, nil, err
	}
	return res, nil, nil
}
