package archive

import (
	"context"
	"crypto"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/edgeseal/edgeseal/bundle"
	"github.com/edgeseal/edgeseal/bundle/wire"
)

// Purge. A bundle past its retain-until and under no legal hold loses
// its payload bytes: the stored bundle is replaced by its skeleton, the
// same bag without the files under data/payloads/ (records, seal, quote,
// manifests and bag-info unchanged), stored under its own digest; a
// signed retention.purge statement in the archive log names the bundle's
// digest, the skeleton's, the payload digests deleted, the class and the
// retain-until. The receipt, the log leaf and the skeleton keep the
// bundle verifiable (verify.VerifyPurged) with the payloads shown as
// purged. docs/formats.md "Retention and purge" describes it.

// PurgeOptions choose what Purge does.
type PurgeOptions struct {
	By, Reason string
	// Bundles, when set, are the only bundles purged ("sha256:.."): each
	// must be past its retain-until and not held, else Purge refuses
	// them all. Empty: every bundle past its retain-until and not held.
	Bundles []string
	// DryRun reports what would be purged, writing nothing.
	DryRun bool
}

// PurgeResult is what Purge did (or would do).
type PurgeResult struct {
	Purged []PurgedObject
	// Retained are the bundles kept, with why ("held by case C-1",
	// "retained until …").
	Retained map[string]string
	Logged   *Logged // nil for a dry run or when nothing was purged
}

// Purge deletes the payload bytes of the bundles past their retain-until
// and not under legal hold, as a statement signed by the operator's key
// (see the comment above). The statement is logged before any bytes are
// deleted; a purge interrupted after it completes on the next Purge.
func (a *Archive) Purge(ctx context.Context, key crypto.Signer, o PurgeOptions) (*PurgeResult, error) {
	if err := a.checkOperator(StatementPurge, key); err != nil {
		return nil, err
	}
	r, err := a.retainer()
	if err != nil {
		return nil, err
	}
	ls, err := a.readLogState(ctx)
	if err != nil {
		return nil, err
	}
	if !o.DryRun {
		if err := a.finishPurges(ctx, r, ls); err != nil {
			return nil, err
		}
	}
	now := a.now()
	res := &PurgeResult{Retained: map[string]string{}}
	var refused []string
	for _, d := range ls.order {
		name := wire.FormatHash(d)
		if _, ok := ls.purged[d]; ok || (len(o.Bundles) > 0 && !slices.Contains(o.Bundles, name)) {
			continue
		}
		until, held, err := r.Retained(ctx, d)
		if err != nil {
			return nil, err
		}
		why := ""
		switch {
		case len(ls.holds[d]) > 0:
			why = "under legal hold (case " + strings.Join(ls.holds[d], ", ") + ")"
		case held:
			why = "under legal hold in the object store"
		case until.IsZero():
			why = "no retain-until recorded"
		case now.Before(until):
			why = "retained until " + wire.FormatTime(until)
		}
		if why != "" {
			res.Retained[name] = why
			refused = append(refused, name+": "+why)
			continue
		}
		p, err := a.skeleton(ctx, d, until, o.DryRun)
		if err != nil {
			return nil, err
		}
		res.Purged = append(res.Purged, p)
	}
	for _, b := range o.Bundles {
		d, err := wire.ParseHash(b)
		if err != nil {
			return nil, err
		}
		if _, ok := ls.bundles[d]; !ok {
			refused = append(refused, b+": not an accepted bundle")
		} else if _, ok := ls.purged[d]; ok {
			refused = append(refused, b+": already purged")
		}
	}
	if len(o.Bundles) > 0 && len(refused) > 0 {
		return nil, &OperatorError{Op: StatementPurge, Reason: "refused: " + strings.Join(refused, "; ")}
	}
	if o.DryRun || len(res.Purged) == 0 {
		return res, nil
	}
	s := &OperatorStatement{Type: StatementPurge, By: o.By, Reason: o.Reason, Time: wire.FormatTime(now), Purged: res.Purged}
	if res.Logged, err = a.logStatement(ctx, s, key); err != nil {
		return nil, err
	}
	ls.apply(res.Logged.Statement)
	if err := a.finishPurges(ctx, r, ls); err != nil {
		return res, err
	}
	a.alert(ctx, Alert{Severity: SeverityWarning, Kind: KindOperator, Reasons: []string{
		fmt.Sprintf("%s of %d bundle(s) by %s (key %s), archive log index %d", StatementPurge, len(res.Purged), o.By, res.Logged.Statement.Key, res.Logged.LogIndex)}})
	return res, nil
}

// skeleton builds (and, unless dry, stores) the skeleton of bundle d.
func (a *Archive) skeleton(ctx context.Context, d [32]byte, until time.Time, dry bool) (PurgedObject, error) {
	raw, err := a.objects.Get(ctx, d)
	if err != nil {
		return PurgedObject{}, err
	}
	b, err := bundle.ReadBytes(raw, a.opts.Limits)
	if err != nil {
		return PurgedObject{}, fmt.Errorf("archive: purge sha256:%x: %w", d, err)
	}
	skel, payloads := Skeleton(b)
	sraw, err := skel.Bytes()
	if err != nil {
		return PurgedObject{}, err
	}
	sd, err := skel.Digest()
	if err != nil {
		return PurgedObject{}, err
	}
	classes, _ := bundleClasses(b)
	class, _, f := a.longestClass(classes)
	if f != nil || class == "" {
		class = "unknown"
	}
	if !dry {
		if err := a.objects.Put(ctx, sd, sraw); err != nil {
			return PurgedObject{}, err
		}
	}
	return PurgedObject{Bundle: wire.FormatHash(d), Skeleton: wire.FormatHash(sd), Payloads: payloads, Class: class, RetainUntil: wire.FormatTime(until)}, nil
}

// Skeleton returns b without its payload files (data/payloads/*) and the
// payload digests removed ("sha256:..", sorted; an encrypted payload is
// named by the digest of its plaintext, as its path).
func Skeleton(b *bundle.Bundle) (*bundle.Bundle, []string) {
	skel := &bundle.Bundle{Files: make(map[string][]byte, len(b.Files))}
	payloads := []string{}
	for name, data := range b.Files {
		if d, ok := bundle.PayloadDigestFromPath(name); ok {
			if h := wire.FormatHash(d); !slices.Contains(payloads, h) {
				payloads = append(payloads, h)
			}
			continue
		}
		skel.Files[name] = data
	}
	slices.Sort(payloads)
	return skel, payloads
}

// finishPurges deletes the bundles the log says are purged and still
// stored (a purge interrupted after its statement).
func (a *Archive) finishPurges(ctx context.Context, r Retainer, ls *logState) error {
	var errs []error
	for d := range ls.purged {
		ok, err := a.objects.Has(ctx, d)
		if err != nil {
			return err
		}
		if !ok {
			continue
		}
		if err := r.Delete(ctx, d); err != nil && !errors.Is(err, ErrNotFound) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
