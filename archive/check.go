package archive

import (
	"context"
	"errors"
	"fmt"

	"github.com/edgeseal/edgeseal/archive/state"
	"github.com/edgeseal/edgeseal/bundle/archivesig"
	"github.com/edgeseal/edgeseal/bundle/wire"
)

// CheckResult is what Check found: Scrub's result, and the disagreements
// between the log and the index.
type CheckResult struct {
	ScrubResult
	// Inconsistent names each disagreement of the log and the index: a
	// logged bundle without its accept event, or with another log index;
	// an accept event whose log entry is absent or names another bundle;
	// a receipt missing from the index or naming another bundle or index.
	Inconsistent []string
}

// OK reports whether the archive's log, index and object store agree.
func (r CheckResult) OK() bool {
	return len(r.Corrupt) == 0 && len(r.Missing) == 0 && len(r.Inconsistent) == 0
}

// Check verifies that the log, the index and the object store agree:
// every bundle in the log is stored intact (Scrub), is accepted in the
// index at its log index, and has its receipt kept, naming that bundle
// and index; every accepted bundle is in the log where the index says.
// With a shared chain-state store (replicas) a logged bundle this
// replica's index does not hold is looked up in the store, where the
// replica that accepted it recorded it with its receipt.
// It reads the archive as Open left it (Open completes log entries a
// crash left without their accept event). It returns an error only when
// it cannot go on; an archive that restarted after any failed write must
// check clean.
func (a *Archive) Check(ctx context.Context) (CheckResult, error) {
	var res CheckResult
	sr, err := a.Scrub(ctx)
	res.ScrubResult = sr
	if err != nil {
		return res, err
	}
	bad := func(f string, args ...any) { res.Inconsistent = append(res.Inconsistent, fmt.Sprintf(f, args...)) }
	acc, err := a.acceptedAll(ctx)
	if err != nil {
		return res, err
	}
	logged := map[[32]byte]bool{}
	err = a.log.all(ctx, func(seq uint64, rec []byte) error {
		lr, err := parseLogRecord(rec)
		if err != nil {
			return fmt.Errorf("archive: check: log record %d: %w", seq, err)
		}
		if lr.stmt != nil || lr.entry == nil {
			return nil
		}
		digest, err := wire.ParseHash(lr.entry.BundleDigest)
		if err != nil {
			return fmt.Errorf("archive: check: log record %d: %w", seq, err)
		}
		logged[digest] = true
		v, ok := acc[digest]
		if !ok && a.shared {
			// Replicas: another replica accepted it; the shared
			// chain-state store holds its record and receipt.
			if v, ok, err = a.sharedAccepted(ctx, digest); err != nil {
				return err
			}
		}
		switch {
		case !ok:
			bad("log %d: bundle %s has no accept event in the index", seq, lr.entry.BundleDigest)
			return nil
		case v.logIndex != seq:
			bad("log %d: bundle %s accepted at log index %d", seq, lr.entry.BundleDigest, v.logIndex)
			return nil
		case v.receiptBytes == nil && v.pending != nil:
			bad("log %d: bundle %s accepted and not receipted yet (a replica died before its receipt; it is receipted when sent again)", seq, lr.entry.BundleDigest)
			return nil
		}
		raw, err := a.storedReceipt(v)
		if err != nil {
			bad("log %d: bundle %s: %v", seq, lr.entry.BundleDigest, err)
			return nil
		}
		_, rc, err := archivesig.ParseReceipt(raw)
		switch {
		case err != nil:
			bad("log %d: receipt of %s: %v", seq, lr.entry.BundleDigest, err)
		case rc.BundleDigest != lr.entry.BundleDigest || rc.LogIndex != seq:
			bad("log %d: the receipt kept for %s names %s at index %d", seq, lr.entry.BundleDigest, rc.BundleDigest, rc.LogIndex)
		}
		return nil
	})
	if err != nil {
		return res, err
	}
	for d, v := range acc {
		if !logged[d] {
			bad("index: bundle %s accepted at log index %d is not in the log", wire.FormatHash(d), v.logIndex)
		}
	}
	return res, nil
}

// sharedAccepted is the shared chain-state store's record of the
// accepted bundle digest (false: none).
func (a *Archive) sharedAccepted(ctx context.Context, digest [32]byte) (accepted, bool, error) {
	sa, err := a.chainStore.Bundle(ctx, digest)
	switch {
	case errors.Is(err, state.ErrNotFound):
		return accepted{}, false, nil
	case err != nil:
		return accepted{}, false, fmt.Errorf("archive: check: %w", err)
	}
	acc := accepted{device: sa.Device, logIndex: sa.LogIndex, receiptBytes: sa.Receipt, pending: sa.Pending}
	if len(sa.Receipt) == 0 {
		acc.receiptBytes = nil
	}
	return acc, true, nil
}
