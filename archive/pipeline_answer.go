package archive

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"

	"github.com/edgeseal/edgeseal/archive/tlog"
	"github.com/edgeseal/edgeseal/bundle/archivesig"
	"github.com/edgeseal/edgeseal/bundle/merkle"
	"github.com/edgeseal/edgeseal/bundle/wire"
	"github.com/edgeseal/edgeseal/store"
)

// The committer's second stage (pipeline.go): a logged group's
// checkpoint, receipts, index events, chain advance and answers.

// answerGroup is the second stage of a group's commit: the receipts,
// the index events and the chains' advance, then the answers, in order
// (so a device's bundles are answered in the order they were admitted).
func (a *Archive) answerGroup(ctx context.Context, g *group) {
	ps := g.ps
	func() {
		defer a.keyMu.RUnlock()
		// A failure answered since the first stage fails the bundles
		// verified on top of it.
		a.mu.Lock()
		for i, p := range ps {
			// (A bundle advanced already is accepted: its receipt is
			// signed all the same.)
			if g.errs[i] == nil && p.epoch != p.ds.epoch && !p.advanced {
				g.fail(i, errPredecessor)
			}
		}
		a.mu.Unlock()
		a.durable(ctx, g)
	}()
	if h := a.commitHook; h != nil {
		for i, p := range ps {
			if g.ok(i) {
				if err := h(p.digest); err != nil {
					g.fail(i, err)
				}
			}
		}
	}
	var ok []*pending
	for i, p := range ps {
		if g.ok(i) {
			if !p.advanced {
				a.remember(p)
			}
			ok = append(ok, p)
		}
	}
	var unadvanced map[[32]byte]error
	if a.shared {
		unadvanced = a.recordReceipts(ctx, ok) // the second phase (twophase.go)
	} else {
		unadvanced = a.advanceChains(ctx, ok)
	}
	for i, p := range ps {
		if !g.ok(i) {
			if ue, ok := errors.AsType[*unreceiptedError](g.errs[i]); ok {
				// Advanced, not receipted: answered held, the device
				// sends it again soon (after its predecessor).
				t := a.held(p.digest, p.topic, ue.Error())
				a.finish(p, t.reply, t.err)
				continue
			}
			a.finish(p, nil, g.errs[i])
			continue
		}
		if err := unadvanced[p.digest]; err != nil {
			a.finish(p, nil, err)
			continue
		}
		a.stats.accepted.Add(1)
		a.lg.Info("bundle accepted", "device", p.topic, "bundle", p.entry.BundleDigest, "checkpoint", p.cp.Size, "logIndex", p.seq)
		a.finish(p, p.receipt, nil)
	}
	a.mu.Lock()
	for ds := range g.marked {
		if a.failing[ds]--; a.failing[ds] <= 0 {
			delete(a.failing, ds)
		}
	}
	a.mu.Unlock()
	a.wakeIndexer()
}

// durable writes the checkpoint and the index events of the group's
// entries logged by logGroup. Each is a synced journal commit; a failure
// fails the group (no receipt, no answer: the devices send again) and,
// being a failed journal write, the journal: Archive.Failed raises the
// alarm storage.failed and the daemon exits for a restart. No commit is
// retried in this process (docs/durability.md).
func (a *Archive) durable(ctx context.Context, g *group) {
	if g.recorded != nil {
		// Before any answer: the group's log key records.
		defer func() {
			if err := g.recorded(); err != nil {
				g.failAll(err)
			}
		}()
	}
	if !g.any() {
		return
	}
	a.holdLogged(ctx, g, g.held)
	if !g.any() {
		return
	}
	if err := a.receipts(ctx, g); err != nil {
		g.failAll(err)
		return
	}
	a.indexGroup(ctx, g)
}

// receipts waits for the log checkpoint that covers the group's
// entries (the journal engine signs and stores it at once, a Tessera one
// publishes it within its checkpoint interval) and signs each bundle's
// receipt against it, with the inclusion and consistency proofs of the
// log at the checkpoint's size. Replicas first read where each device's
// proof starts from the store (witnessFromStore), and the checkpoint
// covers that too.
func (a *Archive) receipts(ctx context.Context, g *group) error {
	var top uint64
	from := map[string]uint64{} // device -> its previous receipt's checkpoint size
	unproven := map[string]error{}
	for i, p := range g.ps {
		if !g.ok(i) {
			continue
		}
		if err := unproven[p.entry.Device]; err != nil {
			g.fail(i, err)
			continue
		}
		top = max(top, p.seq+1)
		if _, seen := from[p.entry.Device]; seen {
			continue
		}
		var prev uint64
		var err error
		if a.shared {
			prev, err = a.witnessFromStore(ctx, p)
			if _, ok := errors.AsType[*unreceiptedError](err); ok {
				// No answer: the device sends it again, and its repeat
				// is receipted once the predecessor is (repeat.go).
				a.lg.Warn("receipt not signed: the receipt of the device's previous bundle is not recorded", "device", p.topic, "bundle", p.entry.BundleDigest, "err", err)
				unproven[p.entry.Device] = err
				g.fail(i, err)
				continue
			}
		} else {
			prev, err = a.previousReceiptSize(p.entry.Device)
		}
		if err != nil {
			return err
		}
		from[p.entry.Device] = prev
		top = max(top, prev)
	}
	if top == 0 {
		return nil // nothing left to receipt
	}
	cp, err := a.log.awaitCheckpoint(ctx, top)
	if err != nil {
		return err
	}
	retention := wire.FormatTime(a.now().Add(a.opts.Retention))
	k := a.cur.Load()
	for i, p := range g.ps {
		if !g.ok(i) {
			continue
		}
		until := retention
		if !p.until.IsZero() {
			until = wire.FormatTime(p.until)
		}
		if p.receipt, err = a.signReceipt(ctx, k, p.entry, p.seq, until, p.staleKey, from[p.entry.Device], cp); err != nil {
			return err
		}
		p.rsize, p.rroot = cp.Size, cp.Root
	}
	return nil
}

// signReceipt signs the receipt of the log entry seq against the log
// checkpoint cp (covering it) with key k: its inclusion proof and the
// consistency proof from the log of size prev (the device's previous
// receipt; 0: none).
func (a *Archive) signReceipt(ctx context.Context, k *signerState, entry archivesig.ReceiptEntry, seq uint64, until string, staleKey bool, prev uint64, cp tlog.Checkpoint) ([]byte, error) {
	proof, err := a.log.inclusionProof(ctx, seq, cp.Size)
	if err != nil {
		return nil, fmt.Errorf("archive: inclusion proof: %w", err)
	}
	r := &archivesig.Receipt{
		BundleDigest: entry.BundleDigest, Device: entry.Device, CheckpointSize: entry.CheckpointSize, CheckpointRoot: entry.CheckpointRoot,
		LogIndex: seq, ArchiveCheckpoint: string(cp.Note), RetentionUntil: until, Epoch: entry.Epoch,
		KeyChain: k.tail(),
	}
	if staleKey {
		r.ContentKey, _ = a.newestContentKey()
	}
	for _, h := range proof {
		r.InclusionProof = append(r.InclusionProof, h[:])
	}
	if err := a.addConsistency(ctx, r, prev, cp.Size); err != nil {
		return nil, err
	}
	return archivesig.SignReceipt(r, k.keyID, k.key)
}

// indexGroup journals the group's accept events with their receipts in one
// commit (a bundle recorded before a crash keeps the receipt recorded
// then).
func (a *Archive) indexGroup(ctx context.Context, g *group) {
	var es []store.Entry
	var at []int
	for i, p := range g.ps {
		if !g.ok(i) {
			continue
		}
		p.at = wire.FormatTime(a.now())
		e, err := a.acceptEntry(p.digest, p.topic, p.era, p.seq, p.st, p.receipt, p.admins, p.at)
		if err != nil {
			g.fail(i, err)
			continue
		}
		p.rd = sha256.Sum256(p.receipt)
		es = append(es, e)
		at = append(at, i)
	}
	if len(es) == 0 {
		return
	}
	_, err := a.index.AppendBatch(ctx, es)
	var be *store.BatchError
	if err != nil && !errors.As(err, &be) {
		g.failAll(fmt.Errorf("archive: index: %w", err))
		return
	}
	for k, i := range at {
		if be == nil || be.Errs[k] == nil {
			continue
		}
		p := g.ps[i]
		dup, ok := errors.AsType[*store.DuplicateError](be.Errs[k])
		if !ok {
			g.fail(i, fmt.Errorf("archive: index: %w", be.Errs[k]))
			continue
		}
		rd, err := a.recordedReceipt(dup.Seq)
		var receipt []byte
		if err == nil {
			receipt, err = a.storedReceipt(accepted{receipt: rd})
		}
		var cp merkle.Checkpoint
		if err == nil {
			cp, err = receiptCheckpoint(receipt)
		}
		if err != nil {
			g.fail(i, err)
			continue
		}
		p.rd, p.receipt, p.rsize, p.rroot = rd, receipt, cp.Size, cp.Root
	}
}
