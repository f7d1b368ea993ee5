package archive

import (
	"context"
	"errors"
	"fmt"

	"github.com/edgeseal/edgeseal/archive/state"
	"github.com/edgeseal/edgeseal/bundle/archivesig"
)

// Repeats. A bundle accepted before is answered with its stored receipt
// (the record: index, object store, read API) unless the device could
// not take it. The agent witnesses the archive log (receipts'
// witnessFrom and witnessProof, witness.go): it takes a receipt whose
// archive checkpoint is below the one it accepted last only when it
// accepted that checkpoint before, or the receipt proves it from one it
// accepted. A stored receipt with a consistency proof is taken by a
// device that lost it (its next receipt, proven from the lost one's
// checkpoint, was refused, and the device is still where the stored one
// starts) as by one that moved past it. A stored receipt without one
// (the device's first, or from an archive that gave none) cannot be
// checked by a device that has since accepted a larger checkpoint (its
// next receipt, taken unchecked as its first, made it skip the lost
// one's): once the device was given a receipt of a larger checkpoint,
// the repeat is answered with a fresh receipt instead, against the log's
// current checkpoint, with the inclusion proof of the bundle's entry in
// it and the consistency proof from the checkpoint of the device's
// newest receipt (state.Chain.ReceiptSize, whichever replica gave it).
// The fresh receipt is not stored and does not move the chain's
// ReceiptSize: the device's next receipts are proven from the same
// checkpoint whether the fresh one reached it or not (an agent that took
// the fresh one takes them as proven from a checkpoint it accepted).

// repeatReceipt is the answer to a repeat of acc, whose stored receipt
// is stored, from device topic.
func (a *Archive) repeatReceipt(ctx context.Context, acc accepted, topic string, stored []byte) ([]byte, error) {
	_, r, err := archivesig.ParseReceipt(stored)
	if err != nil {
		return nil, fmt.Errorf("archive: stored receipt of log entry %d: %w", acc.logIndex, err)
	}
	if r.WitnessFrom > 0 {
		return stored, nil
	}
	was, err := r.ArchiveRoot()
	if err != nil {
		return nil, fmt.Errorf("archive: stored receipt of log entry %d: %w", acc.logIndex, err)
	}
	c, err := a.chainStore.Get(ctx, topic)
	if errors.Is(err, state.ErrNotFound) {
		return stored, nil
	}
	if err != nil {
		return nil, fmt.Errorf("archive: %w", err)
	}
	from := c.ReceiptSize
	if from <= was.Size {
		return stored, nil // nothing larger given to the device
	}
	return a.freshReceipt(ctx, r, from)
}

// freshReceipt signs r anew against the log's current checkpoint (the
// latest published: it covers from and r's entry, both
// published before), with the consistency proof from the archive log of
// size from.
func (a *Archive) freshReceipt(ctx context.Context, r *archivesig.Receipt, from uint64) ([]byte, error) {
	logIndex := r.LogIndex
	a.keyMu.RLock() // not across a key rotation (the note's key signs the receipt)
	defer a.keyMu.RUnlock()
	cp, err := a.log.awaitCheckpoint(ctx, max(from, logIndex+1))
	if err != nil {
		return nil, err
	}
	proof, err := a.log.inclusionProof(ctx, logIndex, cp.Size)
	if err != nil {
		return nil, fmt.Errorf("archive: inclusion proof: %w", err)
	}
	k := a.cur.Load()
	f := *r
	f.ArchiveCheckpoint, f.KeyChain = string(cp.Note), k.tail()
	f.InclusionProof, f.WitnessFrom, f.WitnessProof = nil, 0, nil
	for _, h := range proof {
		f.InclusionProof = append(f.InclusionProof, h[:])
	}
	if err := a.addConsistency(ctx, &f, from, cp.Size); err != nil {
		return nil, err
	}
	a.stats.fresh.Add(1)
	return archivesig.SignReceipt(&f, k.keyID, k.key)
}
