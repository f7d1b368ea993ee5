package archive

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/edgeseal/edgeseal/archive/state"
	"github.com/edgeseal/edgeseal/bundle/archivesig"
	"github.com/edgeseal/edgeseal/bundle/merkle"
	"github.com/edgeseal/edgeseal/bundle/verify"
	"github.com/edgeseal/edgeseal/bundle/wire"
	"github.com/edgeseal/edgeseal/store"
)

// Repeats. A bundle accepted before is answered with its stored receipt
// (the record: index, object store, read API) unless the device could
// not take it. The agent witnesses the archive log (receipts'
// witnessFrom and witnessProof, witness.go): it takes a receipt whose
// archive checkpoint is below the one it accepted last only when it
// accepted that checkpoint before, the receipt proves it from one it
// accepted, or it is below the first one it accepted (taken
// unwitnessed: the device never saw the log there). A stored receipt
// with a consistency proof is taken by a
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
//
// A bundle a replica advanced and never receipted (it died between the
// two phases, twophase.go) has no receipt to repeat: its repeat, at any
// replica, finishes it (finishUnreceipted) as the second phase would
// have: a receipt against the log's current checkpoint, proven from the
// receipt of the device's bundle before it (answered held while that
// one is not recorded: the device sends both again), its index event
// journaled (or, when one was, the receipt it carries), and the receipt
// recorded.

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

// finishUnreceipted receipts a bundle the store recorded without its
// receipt (acc.pending), journals its index event and records the
// receipt; it returns the receipt recorded (the first, when another
// replica's came first).
func (a *Archive) finishUnreceipted(ctx context.Context, digest [32]byte, acc accepted) ([]byte, error) {
	var pr pendingRecord
	if err := json.Unmarshal(acc.pending, &pr); err != nil {
		return nil, fmt.Errorf("archive: pending record of sha256:%x: %w", digest, err)
	}
	st, err := verify.ParseState(pr.State)
	if err != nil {
		return nil, fmt.Errorf("archive: pending record of sha256:%x: %w", digest, err)
	}
	dcp, err := merkle.ParseCheckpoint([]byte(st.Checkpoint))
	if err != nil {
		return nil, fmt.Errorf("archive: pending record of sha256:%x: %w", digest, err)
	}
	entry := archivesig.ReceiptEntry{BundleDigest: wire.FormatHash(digest), Device: acc.device, CheckpointSize: dcp.Size,
		CheckpointRoot: wire.FormatHash(dcp.Root), Epoch: epochField(pr.Era)}
	var prev [32]byte
	if pr.Prev != "" {
		if prev, err = wire.ParseHash(pr.Prev); err != nil {
			return nil, fmt.Errorf("archive: pending record of sha256:%x: %w", digest, err)
		}
	}
	// Proven from the predecessor's receipt (twophase.go); one not
	// recorded yet: no answer, the device sends both again.
	from, err := a.predecessorReceiptSize(ctx, acc.device, prev)
	if err != nil {
		return nil, err
	}
	receipt, err := func() ([]byte, error) {
		a.keyMu.RLock() // not across a key rotation (the note's key signs the receipt)
		defer a.keyMu.RUnlock()
		cp, err := a.log.awaitCheckpoint(ctx, max(from, acc.logIndex+1))
		if err != nil {
			return nil, err
		}
		until := pr.Until
		if until == "" {
			until = wire.FormatTime(a.now().Add(a.opts.Retention))
		}
		return a.signReceipt(ctx, a.cur.Load(), entry, acc.logIndex, until, pr.StaleKey, from, cp)
	}()
	if err != nil {
		return nil, err
	}
	e, err := a.acceptEntry(digest, acc.device, pr.Era, acc.logIndex, st, receipt, pr.Admins, wire.FormatTime(a.now()))
	if err != nil {
		return nil, err
	}
	_, err = a.index.AppendBatch(ctx, []store.Entry{e})
	if be, ok := errors.AsType[*store.BatchError](err); ok && len(be.Errs) == 1 {
		err = be.Errs[0]
	}
	if dup, ok := errors.AsType[*store.DuplicateError](err); ok {
		// Journaled before (its replica died after its index event):
		// the receipt that event carries.
		rd, rerr := a.recordedReceipt(dup.Seq)
		if rerr == nil {
			receipt, rerr = a.storedReceipt(accepted{receipt: rd})
		}
		err = rerr
	}
	if err != nil {
		return nil, fmt.Errorf("archive: index: %w", err)
	}
	a.wakeIndexer()
	cp, err := receiptCheckpoint(receipt)
	if err != nil {
		return nil, err
	}
	rec, err := a.chainStore.AdvanceReceipt(ctx, state.Receipt{Bundle: digest, Device: acc.device, LogIndex: acc.logIndex,
		Receipt: receipt, Size: cp.Size, Root: cp.Root})
	if err != nil {
		return nil, fmt.Errorf("archive: %w", err)
	}
	a.stats.fresh.Add(1)
	a.lg.Info("bundle accepted before and never receipted: receipted on its repeat", "device", acc.device, "bundle", entry.BundleDigest, "logIndex", acc.logIndex)
	return rec.Receipt, nil
}
