package proof

import (
	"encoding/json"
	"fmt"

	"github.com/edgeseal/edgeseal/bundle"
	"github.com/edgeseal/edgeseal/bundle/custody"
	"github.com/edgeseal/edgeseal/bundle/wire"
)

// Refusal is an export the agent refused: its export.rejected record
// (Export's Payload is empty: nothing was kept).
type Refusal struct {
	Export
	Reason string `json:"reason"`
}

// Refusals lists the export.rejected records of a bundle, in seq order.
// It parses the records only; it does not verify the bundle.
func Refusals(b *bundle.Bundle) ([]Refusal, error) {
	recs, err := b.Records()
	if err != nil {
		return nil, err
	}
	var out []Refusal
	for _, raw := range recs {
		r, err := custody.ParseRecord(raw)
		if err != nil {
			return nil, fmt.Errorf("proof: %w", err)
		}
		if r.Type != custody.TypeExportRejected {
			continue
		}
		var body custody.RejectedBody
		if err := json.Unmarshal(r.Body, &body); err != nil {
			return nil, fmt.Errorf("proof: record %d: %w", r.Seq, err)
		}
		out = append(out, Refusal{Export: Export{ExportID: body.ExportID, Principal: r.Actor.ID, Device: r.Device, Seq: r.Seq,
			Time: wire.FormatTime(r.Time), App: body.App, Workflow: body.Workflow, Policy: body.Policy}, Reason: body.Reason})
	}
	return out, nil
}

// RefusedError reports an export id that names no export but exports the
// agent refused: their rejections are sealed in the chain, and a refused
// export has no export proof (verify its bundle to see the rejection).
// It wraps ErrNotFound.
type RefusedError struct {
	ExportID string
	Refusals []Refusal
}

func (e *RefusedError) Error() string {
	s := fmt.Sprintf("proof: export %q was refused by the agent; its rejection is sealed in the custody chain, and a refused export has no export proof (verify its bundle to see the rejection):", e.ExportID)
	for _, r := range e.Refusals {
		s += fmt.Sprintf("\n  export.rejected record %d of %s, principal %s, %s: %s", r.Seq, r.Device, r.Principal, r.Time, r.Reason)
	}
	return s
}

func (e *RefusedError) Unwrap() error { return ErrNotFound }

// SelectRefused is Select's answer when no export matched: a
// *RefusedError when refusals (narrowed by principal and device) name the
// id, else ErrNotFound.
func SelectRefused(refusals []Refusal, id, principal, device string) error {
	var hit []Refusal
	for _, r := range refusals {
		if r.ExportID == id && (principal == "" || r.Principal == principal) && (device == "" || r.Device == device) {
			hit = append(hit, r)
		}
	}
	if len(hit) == 0 {
		return fmt.Errorf("%w: %q", ErrNotFound, id)
	}
	return &RefusedError{ExportID: id, Refusals: hit}
}
