package archive

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"sync"
	"time"

	"github.com/edgeseal/edgeseal/bundle/archivesig"
	"github.com/edgeseal/edgeseal/bundle/merkle"
	"github.com/edgeseal/edgeseal/bundle/verify"
	"github.com/edgeseal/edgeseal/bundle/wire"
)

// The acceptance pipeline. Admit verifies a bundle on the caller's
// goroutine (per device in order, against the state the device's bundles
// still in flight will leave; devices at once) and queues it; the
// committer takes every queued bundle at once and makes the group durable
// in two stages, each one goroutine taking the groups in order. The first
// waits for the objects (in parallel, each fsynced and linked) and appends
// the log entries (one commit); the second waits for the log checkpoint
// that covers them, signs the receipts against it, journals the index
// events carrying them (one commit), advances the chains and answers the
// tickets (replicas advance the chains at the end of the first stage and
// record the receipts in the second: twophase.go). So the next group is appended while one waits for its
// checkpoint, and both are receipted against the same one when it covers
// both (a Tessera log publishes checkpoints an interval apart). A failure
// fails the bundle and every later bundle of its device already verified
// on top of it (no answer: the agent sends them again), and the device's
// state falls back to what is durable; a bundle whose device failed in a
// group still in the second stage is not appended (failing), so a
// device's entries are never logged past one missing.

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
	// dropped once it is answered, or advanced (twophase.go).
	pinned bool
	// advanced: its chain advance (the first phase, replicas) is stored;
	// prevHead is the device's bundle before it, whose receipt its own
	// proves consistency from.
	advanced bool
	prevHead [32]byte
	// logged is closed once the bundle is advanced or answered
	// (settle): a replica's next bundle of the device need not wait
	// for its receipt.
	logged     chan struct{}
	settleOnce sync.Once

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
	p.settle()
	p.t.reply, p.t.err = reply, err
	close(p.t.done)
	a.adm.ended()
}

// settle closes p.logged (once).
func (p *pending) settle() {
	p.settleOnce.Do(func() {
		if p.logged != nil {
			close(p.logged)
		}
	})
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
	p.settle()
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

// commitLoop is the committer's first stage; it runs the second
// (answerLoop) and ends after it.
func (a *Archive) commitLoop() {
	defer close(a.commitDone)
	depth := loggedDepth
	if a.shared {
		depth = sharedLoggedDepth // (twophase.go)
	}
	logged := make(chan *group, depth)
	answered := make(chan struct{})
	go func() {
		defer close(answered)
		for g := range logged {
			a.answerGroup(a.bg, g)
		}
	}()
	defer func() { close(logged); <-answered }()
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
		logged <- a.logGroup(a.bg, group)
	}
}

// loggedDepth bounds the groups logged and waiting for the second stage
// (their checkpoint): one waiting while the next is appended.
const loggedDepth = 1

// live drops (failing them) the bundles of the group whose device's
// speculative state was reset by an earlier failure, and fails without
// answering yet (errPredecessor) those whose device has a failure in a
// group still on its way, answered with it.
func (a *Archive) live(group []*pending) ([]*pending, map[int]error) {
	out := group[:0]
	var pre map[int]error
	for _, p := range group {
		a.mu.Lock()
		ok, failing := p.epoch == p.ds.epoch, a.failing[p.ds] > 0
		a.mu.Unlock()
		switch {
		case !ok:
			a.finish(p, nil, errPredecessor)
		case failing:
			if pre == nil {
				pre = map[int]error{}
			}
			pre[len(out)] = errPredecessor
			out = append(out, p)
		default:
			out = append(out, p)
		}
	}
	return out, pre
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
	// held are the cases holding the devices of the group's bundles
	// when they were logged (heldOf).
	held map[int][]string
	// marked are the devices counted in Archive.failing for this group.
	marked map[*devState]int
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

// logGroup is the first stage of a group's commit: its objects stored
// and its log entries appended. It returns the group holding a read lock
// of keyMu (a key rotation waits until the group is receipted), which
// answerGroup releases.
func (a *Archive) logGroup(ctx context.Context, ps []*pending) *group {
	ps, pre := a.live(ps)
	g := &group{ps: ps, errs: make([]error, len(ps)), failed: map[*devState]int{}}
	// Objects: their Puts started when they were admitted (one fsync
	// each, overlapping each other and the commits of earlier groups).
	for i, p := range ps {
		<-p.put
		g.errs[i] = p.putErr
	}
	for i, p := range ps {
		if err := pre[i]; err != nil {
			g.errs[i] = nil
			g.fail(i, err)
			continue
		}
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
	a.keyMu.RLock() // a key rotation waits (RotateKey); answerGroup releases it
	if g.any() {
		a.holdMu.Lock()
		err := a.appendLog(ctx, g)
		g.held = a.heldOf(g)
		a.holdMu.Unlock()
		if err != nil {
			g.failAll(err)
		}
	}
	if a.shared {
		a.advanceLogged(ctx, g) // the first phase (twophase.go)
	}
	// The devices failing in this group: the next groups append none of
	// their bundles until this one is answered (the failure then resets
	// them).
	g.marked = maps.Clone(g.failed)
	a.mu.Lock()
	for ds := range g.marked {
		a.failing[ds]++
	}
	a.mu.Unlock()
	return g
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
