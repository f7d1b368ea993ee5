package archive

import (
	"context"
	"fmt"
	"slices"
)

// A legal hold whose target is a device holds, besides the device's
// bundles its statement lists, every bundle of the device the archive
// logs after it, until a hold.release of the same case and device. The
// archive keeps the cases holding each device (Archive.devHolds, from the
// log at Open); a bundle of a held device is stored under legal hold
// (Retainer.SetLegalHold) right after its log entry is appended and
// before its receipt is sent, and a purge refuses it (logState.holds).
// Hold takes holdMu across reading the log and appending a device hold,
// and the committer across appending a group's entries, so a bundle is
// logged either before the hold (and listed in it) or after it (and
// covered by it).

// deviceHolds maps a device to the cases holding it.
type deviceHolds map[string][]string

// apply applies a logged hold statement whose target is a device.
func (h deviceHolds) apply(s *OperatorStatement) {
	if s.Target == nil || s.Target.Device == "" {
		return
	}
	dev := s.Target.Device
	switch s.Type {
	case StatementHoldSet:
		if !slices.Contains(h[dev], s.Case) {
			h[dev] = append(slices.Clone(h[dev]), s.Case)
		}
	case StatementHoldRelease:
		cases := slices.DeleteFunc(slices.Clone(h[dev]), func(c string) bool { return c == s.Case })
		if len(cases) == 0 {
			delete(h, dev)
		} else {
			h[dev] = cases
		}
	}
}

// heldOf returns, by position in the group, the cases holding the
// device of each bundle still on its way (a.holdMu held).
func (a *Archive) heldOf(g *group) map[int][]string {
	var out map[int][]string
	for i, p := range g.ps {
		if cases := a.devHolds[p.topic]; len(cases) > 0 && g.ok(i) {
			if out == nil {
				out = map[int][]string{}
			}
			out[i] = slices.Clone(cases)
		}
	}
	return out
}

// holdLogged sets the store's legal hold of the group's bundles whose
// device a hold covered when their entries were logged; a bundle whose
// hold cannot be set gets no receipt.
func (a *Archive) holdLogged(ctx context.Context, g *group, held map[int][]string) {
	for i, cases := range held {
		if !g.ok(i) {
			continue
		}
		p := g.ps[i]
		r, err := a.retainer()
		if err == nil {
			err = r.SetLegalHold(ctx, p.digest, true)
		}
		if err != nil {
			g.fail(i, fmt.Errorf("archive: legal hold of a bundle of held device %s: %w", p.topic, err))
			continue
		}
		a.lg.Info("bundle of a held device stored under legal hold", "device", p.topic, "bundle", p.entry.BundleDigest, "cases", cases, "logIndex", p.seq)
	}
}

// loadDeviceHolds reads the device holds in force from the log (Open,
// before recovery commits anything), when the index counted operator
// statements.
func (a *Archive) loadDeviceHolds(ctx context.Context) error {
	if a.opStatements == 0 {
		return nil
	}
	ls, err := a.readLogState(ctx)
	if err != nil {
		return err
	}
	a.holdMu.Lock()
	a.devHolds = ls.devHolds
	a.holdMu.Unlock()
	return nil
}
