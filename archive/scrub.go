package archive

import (
	"context"
	"errors"
	"fmt"

	"github.com/edgeseal/edgeseal/bundle/wire"
)

// KindObjectCorrupt is the alert kind of an archived bundle whose bytes
// no longer match their digest.
const KindObjectCorrupt = "object.corrupt"

// ScrubResult is what Scrub found.
type ScrubResult struct {
	Checked uint64
	Corrupt []string // "sha256:.." of bundles whose stored bytes changed
	Missing []string // logged bundles absent from the object store
}

// Scrub reads back every bundle in the archive log from the object store,
// re-hashing it, and raises an alarm for each one altered (a bit flip at
// rest) or missing. It returns an error only when it cannot go on.
func (a *Archive) Scrub(ctx context.Context) (ScrubResult, error) {
	var res ScrubResult
	ls, err := a.readLogState(ctx) // purged bundles: their skeleton is read instead
	if err != nil {
		return res, err
	}
	err = a.log.all(ctx, func(seq uint64, rec []byte) error {
		lr, err := parseLogRecord(rec)
		if err != nil {
			return fmt.Errorf("archive: scrub: log record %d: %w", seq, err)
		}
		if lr.stmt != nil || lr.entry == nil { // an operator statement or a key announcement: no object
			return nil
		}
		e := lr.entry
		digest, err := wire.ParseHash(e.BundleDigest)
		if err != nil {
			return fmt.Errorf("archive: scrub: log record %d: %w", seq, err)
		}
		res.Checked++
		_, err = a.stored(ctx, ls, digest)
		var ce *CorruptError
		switch {
		case err == nil:
			return nil
		case errors.As(err, &ce):
			res.Corrupt = append(res.Corrupt, e.BundleDigest)
		case errors.Is(err, ErrNotFound):
			res.Missing = append(res.Missing, e.BundleDigest)
		default:
			return err
		}
		a.alert(ctx, Alert{Severity: SeverityAlarm, Kind: KindObjectCorrupt, Device: e.Device, BundleDigest: e.BundleDigest,
			Reasons: []string{fmt.Sprintf("log index %d: %v", seq, err)}})
		return nil
	})
	return res, err
}
