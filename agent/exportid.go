package agent

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/edgeseal/edgeseal/bundle/custody"
	"github.com/edgeseal/edgeseal/store"
)

// Export ids are scoped by principal: each principal has its own id space,
// and the journal's idempotency key of an export is
//
//	"export/" || principal || "/" || id
//
// Journals written before ids were scoped keyed an export by
// "export/" || id (LegacyExportKey); those keys are never written again
// but are still read, so an id accepted before an upgrade stays known:
// it belongs to the principal its record names. Principal names and ids
// never contain '/', so the two layouts cannot collide.
//
// The first refusal of an id a principal sent is keyed
//
//	"refused/" || principal || "/" || id
//
// so that the principal can look it up (GET /v1/exports/{id} answers
// status "refused"); later refusals of the same id are journaled without
// a key.

// ExportKey is the journal's idempotency key of an export id sent by the
// named principal.
func ExportKey(principal, id string) []byte { return []byte("export/" + principal + "/" + id) }

// LegacyExportKey is the key of an export id in journals written before
// ids were scoped by principal; it is read, never written.
func LegacyExportKey(id string) []byte { return []byte("export/" + id) }

// RefusedKey is the key of the first refusal of an id sent by the named
// principal.
func RefusedKey(principal, id string) []byte { return []byte("refused/" + principal + "/" + id) }

// IDConflictError: the principal sent an export id it used before, with
// another workflow or payload. The attempt is journaled as export.rejected
// (the API answers 409 id_conflict). Only what differs is named, never
// the original's metadata.
type IDConflictError struct {
	ExportID string
	Differs  string // "workflow", "payload" or "workflow and payload"
}

func (e *IDConflictError) Error() string {
	return fmt.Sprintf("agent: export id %q was already used by this principal with a different %s", e.ExportID, e.Differs)
}

// RejectReason is the metrics reason of an id conflict.
func (e *IDConflictError) RejectReason() string { return "id_conflict" }

// original is what decides between a duplicate and a conflict: the
// principal, workflow and payload digest an id was first journaled with.
type original struct {
	seq       uint64
	principal string
	workflow  string
	digest    string
}

// readOriginal reads the export record at seq.
func (c *Core) readOriginal(seq uint64) (original, error) {
	rec, err := c.j.Record(seq)
	if err != nil {
		return original{}, fmt.Errorf("agent: original export: %w", err)
	}
	r, err := custody.ParseRecord(rec)
	if err != nil {
		return original{}, fmt.Errorf("agent: original export at %d: %w", seq, err)
	}
	body, err := r.ExportBody()
	if err != nil {
		return original{}, fmt.Errorf("agent: original export at %d: %w", seq, err)
	}
	return original{seq: seq, principal: r.Actor.ID, workflow: body.Workflow, digest: body.Payload.Digest}, nil
}

// conflict compares a repeat with the original: nil when it is the same
// export (a duplicate), else an *IDConflictError.
func (o original) conflict(id, workflow, digest string) error {
	wf, pl := o.workflow != workflow, o.digest != digest
	switch {
	case wf && pl:
		return &IDConflictError{ExportID: id, Differs: "workflow and payload"}
	case wf:
		return &IDConflictError{ExportID: id, Differs: "workflow"}
	case pl:
		return &IDConflictError{ExportID: id, Differs: "payload"}
	}
	return nil
}

// lookupExport finds the export the principal journaled under id: its
// scoped key, else a key of the legacy layout whose record names the
// principal. store.ErrNotFound (wrapped) when there is none.
func (c *Core) lookupExport(principal, id string) (uint64, error) {
	seq, err := c.j.Lookup(ExportKey(principal, id))
	if !errors.Is(err, store.ErrNotFound) {
		return seq, err
	}
	o, ok, err := c.legacyExport(c.j, id)
	if err != nil {
		return 0, err
	}
	if !ok || o.principal != principal {
		return 0, fmt.Errorf("agent: export %s: %w", id, store.ErrNotFound)
	}
	return o.seq, nil
}

// keyLookup is the journal's Lookup, or a store.Snapshot's (one read
// transaction for the lookups of a whole batch).
type keyLookup interface {
	Lookup(key []byte) (uint64, error)
}

// lazySnapshot is a keyLookup that takes a store.Snapshot on its first
// lookup (a batch whose ids the core generated looks nothing up).
type lazySnapshot struct {
	j    *store.Journal
	snap *store.Snapshot
}

func (l *lazySnapshot) Lookup(key []byte) (uint64, error) {
	if l.snap == nil {
		s, err := l.j.Snapshot()
		if err != nil {
			return 0, err
		}
		l.snap = s
	}
	return l.snap.Lookup(key)
}

// Close releases the snapshot, if one was taken.
func (l *lazySnapshot) Close() {
	if l.snap != nil {
		l.snap.Close()
		l.snap = nil
	}
}

// freshID is the keyLookup of an id the core has just generated (128
// random bits, NewExportID): no key of it was ever journaled.
type freshID struct{}

func (freshID) Lookup([]byte) (uint64, error) { return 0, store.ErrNotFound }

// legacyExport reads the export journaled under id's legacy key, if any.
func (c *Core) legacyExport(l keyLookup, id string) (original, bool, error) {
	seq, err := l.Lookup(LegacyExportKey(id))
	if errors.Is(err, store.ErrNotFound) {
		return original{}, false, nil
	}
	if err != nil {
		return original{}, false, fmt.Errorf("agent: export %s: %w", id, err)
	}
	o, err := c.readOriginal(seq)
	if err != nil {
		return original{}, false, err
	}
	return o, true, nil
}

// refusedKey is the key a refusal of id by actor is journaled under: the
// principal's RefusedKey when none was journaled before (and taken is not
// already holding it in this batch), else nil.
func (c *Core) refusedKey(l keyLookup, actor custody.Actor, id string, taken map[string]bool) []byte {
	if actor.Kind != "principal" || checkID(id) != nil {
		return nil
	}
	k := RefusedKey(actor.ID, id)
	if taken[string(k)] {
		return nil
	}
	if _, err := l.Lookup(k); !errors.Is(err, store.ErrNotFound) {
		return nil // journaled before (or unreadable: journal without a key)
	}
	if taken != nil {
		taken[string(k)] = true
	}
	return k
}

// refusal is what a principal may learn of its refused export.
type refusal struct {
	seq    uint64
	reason string
}

// lookupRefused finds the first refusal of id sent by principal.
func (c *Core) lookupRefused(principal, id string) (refusal, error) {
	seq, err := c.j.Lookup(RefusedKey(principal, id))
	if err != nil {
		return refusal{}, err
	}
	rec, err := c.j.Record(seq)
	if err != nil {
		return refusal{}, err
	}
	r, err := custody.ParseRecord(rec)
	if err != nil {
		return refusal{}, err
	}
	var body custody.RejectedBody
	if err := json.Unmarshal(r.Body, &body); err != nil {
		return refusal{}, fmt.Errorf("agent: refusal at %d: %w", seq, err)
	}
	if r.Type != custody.TypeExportRejected || r.Actor.ID != principal || body.ExportID != id {
		return refusal{}, &store.CorruptError{What: fmt.Sprintf("refusal key of %q names record %d, not its refusal", id, seq)}
	}
	return refusal{seq: seq, reason: body.Reason}, nil
}
