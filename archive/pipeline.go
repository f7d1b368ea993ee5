package archive

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"time"

	"github.com/edgeseal/edgeseal/bundle/archivesig"
	"github.com/edgeseal/edgeseal/bundle/merkle"
	"github.com/edgeseal/edgeseal/bundle/verify"
	"github.com/edgeseal/edgeseal/bundle/wire"
	"github.com/edgeseal/edgeseal/store"
)

// The acceptance pipeline. Admit verifies a bundle on the caller's
// goroutine (per device in order, against the state the device's bundles
// still in flight will leave) and queues it; one committer goroutine takes
// every queued bundle at once and makes the group durable: the objects
// (in parallel, each fsynced and linked), the log entries (one commit),
// the log checkpoint at the new size (one commit), the receipts signed
// against it and the index events carrying them (one commit). Only then
// are the tickets answered. A failure fails the bundle and every later
// bundle of its device already verified on top of it (no answer: the
// agent sends them again), and the device's state falls back to what is
// durable.

// Bounds of one group commit.
const (
	maxGroup      = 32       // bundles
	maxGroupBytes = 64 << 20 // bundle bytes
	queueDepth    = 16       // bundles admitted and waiting for the committer
)

// ErrClosed is returned for a bundle the archive could not finish because
// it was closed.
var ErrClosed = errors.New("archive: closed")

// errPredecessor fails a bundle verified on top of one of its device's
// bundles that then failed to commit.
var errPredecessor = errors.New("archive: an earlier bundle of the device failed to commit; send again")

// Ticket is the answer to come for an admitted bundle.
type Ticket struct {
	done  chan struct{}
	reply []byte
	err   error
	after func(ctx context.Context) ([]byte, error) // a copy of a bundle in flight
}

// Wait returns the answer: as Receive's, once it is durable.
func (t *Ticket) Wait(ctx context.Context) ([]byte, error) {
	if t.after != nil {
		return t.after(ctx)
	}
	select {
	case <-t.done:
		return t.reply, t.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func answered(reply []byte, err error) *Ticket {
	t := &Ticket{done: make(chan struct{}), reply: reply, err: err}
	close(t.done)
	return t
}

// pending is a verified bundle on its way to the committer.
type pending struct {
	t      *Ticket
	digest [32]byte
	topic  string
	raw    []byte
	st     *verify.State
	cp     merkle.Checkpoint
	ds     *devState
	epoch  uint64
	era    uint64    // the device's epoch (Rekey) the bundle belongs to
	until  time.Time // retain-until from its retention class; zero: Options.Retention
	admins []string  // key ids of the policy admins its policy.change records name
	// staleKey: a payload was sealed to an older content key; the
	// receipt carries the newest announcement.
	staleKey bool
	// pinned: the bundle holds a pin of its device's lease (replica.go),
	// dropped once it is answered.
	pinned bool

	prevLast *verify.State // the device's speculative state before it, for undo
	prevTail *pending

	put    chan struct{} // closed when the object Put started by Admit returned
	putErr error

	seq     uint64
	entry   archivesig.ReceiptEntry
	receipt []byte
	rd      [32]byte // SHA-256 of receipt
	at      string   // its accept event's time
	// rsize and rroot are the archive checkpoint the receipt was signed
	// against (witness.go).
	rsize uint64
	rroot [32]byte
}

// finish answers p and takes it off the device's in-flight state (the
// caller remembers a success as accepted first); a failure resets the
// device's speculative state, failing the later bundles verified on it.
func (a *Archive) finish(p *pending, reply []byte, err error) {
	a.mu.Lock()
	delete(a.inflight, p.digest)
	ds := p.ds
	if p.epoch == ds.epoch {
		if err != nil { // later bundles were verified on top of it
			ds.epoch++
			ds.resetSpec()
		} else if ds.inflight--; ds.inflight == 0 {
			ds.resetSpec()
		}
	}
	a.mu.Unlock()
	if p.pinned {
		a.unpin(p.topic)
	}
	p.t.reply, p.t.err = reply, err
	close(p.t.done)
	a.adm.ended()
}

// register registers a verified bundle as its device's newest in flight
// (the caller holds the device lock and a.mu).
func (a *Archive) register(p *pending) {
	ds := p.ds
	p.epoch, p.prevLast, p.prevTail = ds.epoch, ds.specLast, ds.tail
	if ds.specCps == nil {
		ds.specCps = map[uint64][32]byte{}
	}
	ds.specCps[p.cp.Size] = p.cp.Root
	ds.specLast, ds.tail = p.st, p
	ds.inflight++
	a.inflight[p.digest] = p.t
}

// unregister undoes register for a bundle that never reached the queue
// (the device lock is still held, so it is the device's newest).
func (a *Archive) unregister(p *pending, err error) {
	a.mu.Lock()
	ds := p.ds
	delete(a.inflight, p.digest)
	if p.epoch == ds.epoch {
		delete(ds.specCps, p.cp.Size)
		ds.specLast, ds.tail = p.prevLast, p.prevTail
		if ds.inflight--; ds.inflight == 0 {
			ds.resetSpec()
		}
	}
	a.mu.Unlock()
	if p.pinned {
		p.pinned = false
		a.unpin(p.topic)
	}
	p.t.err = err
	close(p.t.done)
	a.adm.ended()
}

// enqueue hands a registered bundle to the committer (ErrClosed once
// Close began: Close waits for the enqueues under way, so nothing is
// queued after the committer's last look).
func (a *Archive) enqueue(ctx context.Context, p *pending) error {
	a.qmu.RLock()
	defer a.qmu.RUnlock()
	if a.closing {
		return ErrClosed
	}
	select {
	case a.queue <- p:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// commitLoop is the committer goroutine.
func (a *Archive) commitLoop() {
	defer close(a.commitDone)
	for {
		var first *pending
		select {
		case first = <-a.queue:
		case <-a.quit:
			for {
				select {
				case p := <-a.queue:
					<-p.put // nothing written after Close
					a.finish(p, nil, ErrClosed)
				default:
					return
				}
			}
		}
		group, size := []*pending{first}, len(first.raw)
	fill:
		for len(group) < maxGroup && size < maxGroupBytes {
			select {
			case p := <-a.queue:
				group = append(group, p)
				size += len(p.raw)
			default:
				break fill
			}
		}
		a.commit(a.bg, group)
	}
}

// live drops (failing them) the bundles of the group whose device's
// speculative state was reset by an earlier failure.
func (a *Archive) live(group []*pending) []*pending {
	out := group[:0]
	for _, p := range group {
		a.mu.Lock()
		ok := p.epoch == p.ds.epoch
		a.mu.Unlock()
		if ok {
			out = append(out, p)
		} else {
			a.finish(p, nil, errPredecessor)
		}
	}
	return out
}

// group is the bundles of one commit, in queue order; failed[ds] is the
// position of the first of a device's bundles that failed (the later ones
// fail with it).
type group struct {
	ps     []*pending
	errs   []error
	failed map[*devState]int
	// recorded waits for the log key records of the group's entries
	// (written while the receipts are signed and indexed).
	recorded func() error
}

func (g *group) fail(i int, err error) {
	if g.errs[i] == nil {
		g.errs[i] = err
	}
	if f, ok := g.failed[g.ps[i].ds]; !ok || i < f {
		g.failed[g.ps[i].ds] = i
	}
}

func (g *group) failAll(err error) {
	for i := range g.ps {
		g.fail(i, err)
	}
}

// any reports whether some bundle of the group is still on its way.
func (g *group) any() bool {
	for i := range g.ps {
		if g.ok(i) {
			return true
		}
	}
	return false
}

// ok reports whether bundle i is still on its way.
func (g *group) ok(i int) bool {
	if f, bad := g.failed[g.ps[i].ds]; bad && f < i && g.errs[i] == nil {
		g.errs[i] = errPredecessor
	}
	return g.errs[i] == nil
}

// commit makes a group durable and answers it, in order (so a device's
// bundles are answered in the order they were admitted).
func (a *Archive) commit(ctx context.Context, ps []*pending) {
	ps = a.live(ps)
	g := &group{ps: ps, errs: make([]error, len(ps)), failed: map[*devState]int{}}
	// Objects: their Puts started when they were admitted (one fsync
	// each, overlapping each other and the commits of earlier groups).
	for i, p := range ps {
		<-p.put
		g.errs[i] = p.putErr
	}
	for i, p := range ps {
		if err := g.errs[i]; err != nil {
			g.errs[i] = nil
			g.fail(i, err)
			if ce, ok := errors.AsType[*ConflictError](err); ok {
				a.alert(ctx, Alert{Severity: SeverityAlarm, Kind: KindObjectConflict, Device: p.topic, BundleDigest: wire.FormatHash(p.digest),
					Reasons: []string{ce.Error()}})
			} else if !errors.Is(err, context.Canceled) && !errors.Is(err, ErrClosed) {
				// Not stored durably: no receipt; the device sends
				// the bundle again and the Put starts over.
				a.alert(ctx, Alert{Severity: SeverityAlarm, Kind: KindObjectWrite, Device: p.topic, BundleDigest: wire.FormatHash(p.digest),
					Reasons: []string{err.Error()}})
			}
		}
	}
	a.durable(ctx, g)
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
			a.remember(p)
			ok = append(ok, p)
		}
	}
	unadvanced := a.advanceChains(ctx, ok)
	for i, p := range ps {
		if !g.ok(i) {
			a.finish(p, nil, g.errs[i])
			continue
		}
		if err := unadvanced[p.topic]; err != nil {
			a.finish(p, nil, err)
			continue
		}
		a.stats.accepted.Add(1)
		a.lg.Info("bundle accepted", "device", p.topic, "bundle", p.entry.BundleDigest, "checkpoint", p.cp.Size, "logIndex", p.seq)
		a.finish(p, p.receipt, nil)
	}
	a.wakeIndexer()
}

// durable writes the log entries, the checkpoint and the index events of
// the group's objects that were stored. Each is a synced journal commit;
// a failure fails the group (no receipt, no answer: the devices send
// again) and, being a failed journal write, the journal: Archive.Failed
// raises the alarm storage.failed and the daemon exits for a restart. No
// commit is retried in this process (docs/durability.md).
func (a *Archive) durable(ctx context.Context, g *group) {
	if !g.any() {
		return
	}
	a.keyMu.RLock() // a key rotation waits (RotateKey)
	defer a.keyMu.RUnlock()
	a.holdMu.Lock()
	err := a.appendLog(ctx, g)
	held := a.heldOf(g)
	a.holdMu.Unlock()
	if err != nil {
		g.failAll(err)
		return
	}
	if g.recorded != nil {
		// Before any answer: the group's log key records.
		defer func() {
			if err := g.recorded(); err != nil {
				g.failAll(err)
			}
		}()
	}
	a.holdLogged(ctx, g, held)
	if !g.any() {
		return
	}
	if err := a.receipts(ctx, g); err != nil {
		g.failAll(err)
		return
	}
	a.indexGroup(ctx, g)
}

// appendLog journals the group's log entries in one commit (an entry
// journaled before, by a run that crashed before its index event, keeps
// its index).
func (a *Archive) appendLog(ctx context.Context, g *group) error {
	var es [][]byte
	var at []int
	for i, p := range g.ps {
		if !g.ok(i) {
			continue
		}
		p.entry = archivesig.ReceiptEntry{BundleDigest: wire.FormatHash(p.digest), Device: p.topic, CheckpointSize: p.cp.Size, CheckpointRoot: wire.FormatHash(p.cp.Root), Epoch: epochField(p.era)}
		rec, err := p.entry.Marshal()
		if err != nil {
			g.fail(i, err)
			continue
		}
		es = append(es, rec)
		at = append(at, i)
	}
	if len(es) == 0 {
		return nil
	}
	res, recorded, err := a.log.appendAsync(ctx, es...)
	if err != nil {
		return err
	}
	g.recorded = recorded
	for k, i := range at {
		p := g.ps[i]
		p.seq = res[k].seq
		if old := res[k].old; old != nil && string(old) != string(es[k]) {
			g.fail(i, fmt.Errorf("archive: log record %d for sha256:%x holds another entry", p.seq, p.digest))
		}
	}
	return nil
}

// receipts waits for the log checkpoint that covers the group's
// entries (the journal engine signs and stores it at once, a Tessera one
// publishes it within its checkpoint interval) and signs each bundle's
// receipt against it, with the inclusion and consistency proofs of the
// log at the checkpoint's size.
func (a *Archive) receipts(ctx context.Context, g *group) error {
	var top uint64
	for i, p := range g.ps {
		if g.ok(i) {
			top = max(top, p.seq+1)
		}
	}
	cp, err := a.log.awaitCheckpoint(ctx, top)
	if err != nil {
		return err
	}
	size, signed := cp.Size, cp.Note
	retention := wire.FormatTime(a.now().Add(a.opts.Retention))
	k := a.cur.Load()
	from := map[string]uint64{} // device -> its previous receipt's checkpoint size
	for i, p := range g.ps {
		if !g.ok(i) {
			continue
		}
		prev, seen := from[p.entry.Device]
		if !seen {
			if prev, err = a.previousReceiptSize(p.entry.Device); err != nil {
				return err
			}
			from[p.entry.Device] = prev
		}
		proof, err := a.log.inclusionProof(ctx, p.seq, size)
		if err != nil {
			return fmt.Errorf("archive: inclusion proof: %w", err)
		}
		until := retention
		if !p.until.IsZero() {
			until = wire.FormatTime(p.until)
		}
		r := &archivesig.Receipt{
			BundleDigest: p.entry.BundleDigest, Device: p.entry.Device, CheckpointSize: p.entry.CheckpointSize, CheckpointRoot: p.entry.CheckpointRoot,
			LogIndex: p.seq, ArchiveCheckpoint: string(signed), RetentionUntil: until, Epoch: p.entry.Epoch,
			KeyChain: k.tail(),
		}
		if p.staleKey {
			r.ContentKey, _ = a.newestContentKey()
		}
		for _, h := range proof {
			r.InclusionProof = append(r.InclusionProof, h[:])
		}
		if err := a.addConsistency(ctx, r, prev, size); err != nil {
			return err
		}
		if p.receipt, err = archivesig.SignReceipt(r, k.keyID, k.key); err != nil {
			return err
		}
		p.rsize, p.rroot = size, cp.Root
	}
	return nil
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
