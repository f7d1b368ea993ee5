package archive

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/edgeseal/edgeseal/bundle"
	"github.com/edgeseal/edgeseal/bundle/custody"
	"github.com/edgeseal/edgeseal/bundle/wire"
)

// Retention classes. Each export record names a retention class (set by
// the agent's policy per workflow); Options.Classes maps class names to
// durations. A bundle is kept at least as long as the longest class among
// its export records, counted from its acceptance (a bundle without
// export records, or records without a class, takes
// Options.DefaultClass). A bundle naming a class the archive does not
// know is refused (CheckRetention). Without Classes, every bundle is
// kept Options.Retention and the object store's own retention applies.

// CheckRetention is the refusal check of a bundle whose export records
// name a retention class the archive does not know.
const CheckRetention = "archive.retention"

// Retainer is an ObjectStore that keeps a retain-until time and a legal
// hold per object and deletes objects only past the one and without the
// other. FSStore and archive/s3store.Store implement it.
type Retainer interface {
	// Retain sets the object's retain-until to until, or keeps it when
	// it is already later (retention is only ever extended).
	Retain(ctx context.Context, digest [32]byte, until time.Time) error
	// Retained returns the object's retain-until (zero when none is
	// recorded) and whether it is under legal hold.
	Retained(ctx context.Context, digest [32]byte) (until time.Time, held bool, err error)
	// SetLegalHold sets or clears the object's legal hold.
	SetLegalHold(ctx context.Context, digest [32]byte, on bool) error
	// Delete removes the object; *RetentionError when it is retained
	// (before its retain-until, none recorded, or under legal hold).
	Delete(ctx context.Context, digest [32]byte) error
}

// RetainedPutter is an ObjectStore that writes an object with its
// retain-until (archive/s3store: the Object Lock retain-until of the
// upload, so that no other retention applies first).
type RetainedPutter interface {
	PutRetained(ctx context.Context, digest [32]byte, data []byte, until time.Time) error
}

// RetentionError refuses the deletion of a retained object.
type RetentionError struct {
	Digest [32]byte
	Until  time.Time // zero: none recorded
	Held   bool
	Now    time.Time
}

func (e *RetentionError) Error() string {
	s := fmt.Sprintf("archive: object sha256:%x is retained: ", e.Digest)
	switch {
	case e.Held:
		return s + "under legal hold"
	case e.Until.IsZero():
		return s + "no retain-until is recorded"
	}
	return s + "until " + wire.FormatTime(e.Until) + " (now " + wire.FormatTime(e.Now) + ")"
}

// retentionOf returns the longest retention class of b's export records
// and how long it keeps b; a failure names the unknown class. ok is false
// when the archive has no classes (Options.Retention applies).
func (a *Archive) retentionOf(b *bundle.Bundle) (class string, d time.Duration, f *failure) {
	if len(a.opts.Classes) == 0 {
		return "", 0, nil
	}
	classes, err := bundleClasses(b)
	if err != nil {
		return "", 0, nil // the verification reports the records
	}
	return a.longestClass(classes)
}

// longestClass picks the longest of classes (empty names take the
// default class); f names the classes not configured.
func (a *Archive) longestClass(classes []string) (class string, d time.Duration, f *failure) {
	if len(classes) == 0 {
		classes = []string{""}
	}
	var unknown []string
	for _, c := range classes {
		if c == "" {
			c = a.opts.DefaultClass
		}
		cd, ok := a.opts.Classes[c]
		if !ok {
			if !slices.Contains(unknown, c) {
				unknown = append(unknown, c)
			}
			continue
		}
		if cd > d || class == "" {
			class, d = c, cd
		}
	}
	if len(unknown) > 0 {
		return "", 0, &failure{check: CheckRetention, reason: fmt.Sprintf("unknown retention class %.80q (the archive keeps %s)", unknown, a.classNames())}
	}
	return class, d, nil
}

func (a *Archive) classNames() []string {
	var l []string
	for c := range a.opts.Classes {
		l = append(l, c)
	}
	slices.Sort(l)
	return l
}

// bundleClasses returns the retention classes of b's export records, in
// record order (repeats included).
func bundleClasses(b *bundle.Bundle) ([]string, error) {
	raws, err := b.Records()
	if err != nil {
		return nil, err
	}
	var out []string
	for _, raw := range raws {
		r, err := custody.ParseRecord(raw)
		if err != nil {
			return nil, err
		}
		if r.Type != custody.TypeExport {
			continue
		}
		e, err := r.ExportBody()
		if err != nil {
			return nil, err
		}
		out = append(out, e.Retention)
	}
	return out, nil
}

// putRetained stores an accepted bundle with its retain-until (zero:
// the store's own retention): a RetainedPutter writes it so, a Retainer
// records it after the Put.
func (a *Archive) putRetained(digest [32]byte, data []byte, h wire.Hashed, until time.Time) error {
	if rp, ok := a.objects.(RetainedPutter); ok && !until.IsZero() {
		return rp.PutRetained(a.bg, digest, data, until)
	}
	if err := a.put(digest, data, h); err != nil {
		return err
	}
	return a.retain(a.bg, digest, until)
}

// retain records the object's retain-until in a Retainer store (a store
// without retention keeps its own).
func (a *Archive) retain(ctx context.Context, digest [32]byte, until time.Time) error {
	r, ok := a.objects.(Retainer)
	if !ok || until.IsZero() {
		return nil
	}
	return r.Retain(ctx, digest, until)
}

// retainer returns the object store as a Retainer.
func (a *Archive) retainer() (Retainer, error) {
	r, ok := a.objects.(Retainer)
	if !ok {
		return nil, errors.New("archive: the object store keeps no per-object retention or legal hold")
	}
	return r, nil
}
