package archive

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/edgeseal/edgeseal/archive/state"
	"github.com/edgeseal/edgeseal/bundle/wire"
)

// Replicas advance a device's chain in two phases, so that the device's
// lease is held while its bundles are admitted and logged, not while
// their receipts wait for the log's checkpoint (about a second with the
// MySQL log). The first phase, right after a group's log entries are
// appended (advanceLogged), advances each device's chain in the store
// with the accepted bundles recorded without their receipts (with what
// a repeat needs to finish them: pendingRecord) and unpins the devices'
// leases: another replica admits and logs a device's next bundle while
// this one waits for the checkpoint. The second phase, once the receipts
// are signed and their index events journaled (answerGroup), records
// each receipt (state.Store.AdvanceReceipt: the bundle's receipt, and
// the chain's receipt fields raised, never lowered), then answers.
//
// A receipt proves consistency from the receipt of the device's bundle
// before it (witness.go), which the device takes first. With replicas
// that one may be another replica's, still waiting for its checkpoint:
// the receipt waits (witnessFromStore, at most receiptWait) until it is
// recorded; past the wait the bundle is not receipted and is answered
// held (CheckHeld: the device sends it again soon, after its
// predecessor). Nothing is answered before its receipt is recorded: a
// second phase that fails fails its bundle (no answer: it comes again). A bundle advanced and never receipted (its replica died
// between the phases, or its second phase failed) is finished by its
// next repeat at any replica (finishUnreceipted, repeat.go).

// sharedLoggedDepth bounds the groups a replica logged and advanced
// and that wait for their checkpoint (loggedDepth for one archive): the
// first stage goes on logging and advancing (and unpinning leases)
// while the second waits, its groups holding no bundle bytes.
const sharedLoggedDepth = 4

// receiptWait bounds how long a replica's receipt waits for the receipt
// of the device's previous bundle to be recorded.
const receiptWait = 5 * time.Second

// pendingRecord is what a bundle advanced without its receipt needs to
// be finished (state.Accepted.Pending, JSON): its epoch, the verify state
// it left (its accept event's), the device's bundle before it (whose
// receipt its own proves consistency from), its policy admins, its receipt's
// retentionUntil when a retention class set it, and whether its receipt
// carries the newest content key.
type pendingRecord struct {
	Era      uint64          `json:"era"`
	Prev     string          `json:"prev,omitempty"` // the device's bundle before it (sha256:hex)
	State    json.RawMessage `json:"state"`
	Admins   []string        `json:"admins,omitempty"`
	Until    string          `json:"until,omitempty"`
	StaleKey bool            `json:"staleKey,omitempty"`
}

// receiptHere is the newest receipt this replica recorded for a device.
type receiptHere struct {
	bundle [32]byte
	size   uint64
}

// advanceLogged is the first phase of a logged group (replicas): the
// chains advanced with the bundles recorded without receipts, a device at
// a time in parallel, and the leases unpinned. A device whose advance
// fails has its bundles failed (no answer: they come again) and its
// chain dropped from memory. The legal holds of held devices are set
// first (a bundle that is finished by a repeat sets none).
func (a *Archive) advanceLogged(ctx context.Context, g *group) {
	if !g.any() {
		return
	}
	a.holdLogged(ctx, g, g.held)
	g.held = nil
	type advance struct {
		device   string
		from, to state.Chain
		cps      []state.Checkpoint
		at       []int
		err      error
	}
	byDev := map[string]*advance{}
	var order []*advance
	a.mu.Lock()
	for i, p := range g.ps {
		if !g.ok(i) {
			continue
		}
		v := byDev[p.topic]
		if v == nil {
			c := a.chains[p.topic]
			v = &advance{device: p.topic, from: c, to: c}
			byDev[p.topic] = v
			order = append(order, v)
		}
		vj, err := p.st.Marshal()
		var pend []byte
		if err == nil {
			pr := pendingRecord{Era: p.era, State: vj, Admins: p.admins, StaleKey: p.staleKey}
			if v.to.Head != ([32]byte{}) {
				pr.Prev = wire.FormatHash(v.to.Head)
			}
			if !p.until.IsZero() {
				pr.Until = wire.FormatTime(p.until)
			}
			pend, err = json.Marshal(pr)
		}
		if err == nil && len(pend) > state.MaxPending {
			err = fmt.Errorf("archive: pending record of %d bytes", len(pend))
		}
		if err != nil {
			g.fail(i, err)
			continue
		}
		p.prevHead = v.to.Head
		stepChain(&v.to, p.era, p.digest, p.seq, p.cp, vj)
		v.cps = append(v.cps, state.Checkpoint{Epoch: epochOf(p.era), Size: p.cp.Size, Root: p.cp.Root, Bundle: p.digest})
		v.to.Accepted = append(v.to.Accepted, state.Accepted{Bundle: p.digest, Device: p.topic, LogIndex: p.seq, Pending: pend})
		v.at = append(v.at, i)
	}
	a.mu.Unlock()
	var wg sync.WaitGroup
	for _, v := range order {
		if len(v.at) == 0 {
			continue
		}
		wg.Go(func() {
			res, err := a.chainStore.Advance(ctx, v.device, v.from.Version, v.to, v.cps...)
			if err != nil {
				// Under the device's lease nobody else advances it: a
				// conflict is a lease lost, like any other failure.
				a.lg.Error("chain state not advanced; the device's bundles are not answered and come again", "device", v.device, "err", err)
				a.dropChain(v.device)
				v.err = fmt.Errorf("archive: chain state of %s: %w", v.device, err)
				return
			}
			res.Accepted = nil
			a.mu.Lock()
			a.chains[v.device] = res
			a.mu.Unlock()
		})
	}
	wg.Wait()
	for _, v := range order {
		for _, i := range v.at {
			p := g.ps[i]
			if v.err != nil {
				g.fail(i, v.err)
				continue
			}
			a.remember(p)
			p.advanced, p.raw = true, nil // stored and logged: not needed any more
			if h := a.advancedHook; h != nil {
				if err := h(p.digest); err != nil {
					g.fail(i, err) // a test's replica dying between the phases
				}
			}
			if p.pinned {
				p.pinned = false
				a.unpin(p.topic)
			}
			p.settle()
		}
	}
}

// unreceiptedError: the receipt of the device's bundle before a bundle
// is not recorded (its replica died before signing it, or is late), so
// the bundle's receipt has nothing to prove consistency from that the
// device can accept: it is not signed now.
type unreceiptedError struct {
	Device string
	Prev   [32]byte
}

func (e *unreceiptedError) Error() string {
	return fmt.Sprintf("archive: %s: the receipt of the previous bundle sha256:%x is not recorded yet; send again", e.Device, e.Prev)
}

// predecessorReceiptSize is the archive checkpoint size of the receipt
// recorded for prev, the device's bundle before the one to receipt (0:
// none before; a bundle recorded before the store kept bundles: the
// chain's receipt checkpoint). A bundle proves consistency from its
// predecessor's receipt, which the device accepts before it (the device
// sends its bundles again in order until each receipt is taken): not
// from the chain's newest receipt, which may be of a later bundle whose
// receipt the device could not take yet. An unreceipted prev is an
// *unreceiptedError.
func (a *Archive) predecessorReceiptSize(ctx context.Context, device string, prev [32]byte) (uint64, error) {
	if prev == ([32]byte{}) {
		return 0, nil
	}
	acc, err := a.chainStore.Bundle(ctx, prev)
	if errors.Is(err, state.ErrNotFound) {
		c, err := a.chainStore.Get(ctx, device)
		if err != nil && !errors.Is(err, state.ErrNotFound) {
			return 0, fmt.Errorf("archive: %w", err)
		}
		return c.ReceiptSize, nil
	}
	if err != nil {
		return 0, fmt.Errorf("archive: %w", err)
	}
	if len(acc.Receipt) == 0 {
		return 0, &unreceiptedError{Device: device, Prev: prev}
	}
	cp, err := receiptCheckpoint(acc.Receipt)
	if err != nil {
		return 0, fmt.Errorf("archive: recorded receipt of sha256:%x: %w", prev, err)
	}
	return cp.Size, nil
}

// witnessFromStore is where the receipt of p (the first of its device's
// bundles in its group) proves consistency from: its predecessor's
// receipt checkpoint, once recorded (by this replica, or another: then
// waiting for it at most receiptWait; past it an *unreceiptedError).
func (a *Archive) witnessFromStore(ctx context.Context, p *pending) (uint64, error) {
	if p.prevHead == ([32]byte{}) {
		return 0, nil // the device's first bundle: no receipt before
	}
	a.mu.Lock()
	here, ok := a.receiptsHere[p.topic]
	a.mu.Unlock()
	if ok && here.bundle == p.prevHead {
		return here.size, nil // recorded by this replica
	}
	deadline := time.Now().Add(receiptWait)
	t := time.NewTicker(holdPoll)
	defer t.Stop()
	for {
		size, err := a.predecessorReceiptSize(ctx, p.topic, p.prevHead)
		if _, ok := errors.AsType[*unreceiptedError](err); !ok || !time.Now().Before(deadline) {
			return size, err
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-t.C:
		}
	}
}

// recordReceipts is the second phase: each bundle's receipt recorded
// with its chain's receipt fields (a device's in order, devices in
// parallel). A bundle whose receipt is not recorded is returned (no
// answer: it comes again, and its repeat finishes it); one whose bundle
// a repeat finished first is answered with the receipt recorded.
func (a *Archive) recordReceipts(ctx context.Context, ps []*pending) map[[32]byte]error {
	byDev := map[string][]*pending{}
	var order []string
	for _, p := range ps {
		if byDev[p.topic] == nil {
			order = append(order, p.topic)
		}
		byDev[p.topic] = append(byDev[p.topic], p)
	}
	var mu sync.Mutex
	failed := map[[32]byte]error{}
	var wg sync.WaitGroup
	for _, device := range order {
		wg.Go(func() {
			for _, p := range byDev[device] {
				acc, err := a.chainStore.AdvanceReceipt(ctx, state.Receipt{Bundle: p.digest, Device: p.topic, LogIndex: p.seq,
					Receipt: p.receipt, Size: p.rsize, Root: p.rroot})
				if err != nil {
					a.lg.Error("receipt not recorded; the bundle is not answered and comes again", "device", p.topic, "bundle", p.entry.BundleDigest, "err", err)
					mu.Lock()
					failed[p.digest] = fmt.Errorf("archive: receipt of %s: %w", p.topic, err)
					mu.Unlock()
					continue
				}
				if !bytes.Equal(acc.Receipt, p.receipt) { // a repeat's, recorded first
					cp, err := receiptCheckpoint(acc.Receipt)
					if err != nil {
						mu.Lock()
						failed[p.digest] = fmt.Errorf("archive: recorded receipt of %s: %w", p.topic, err)
						mu.Unlock()
						continue
					}
					p.receipt, p.rsize, p.rroot = acc.Receipt, cp.Size, cp.Root
				}
				a.mu.Lock()
				a.receiptsHere[p.topic] = receiptHere{bundle: p.digest, size: p.rsize}
				a.mu.Unlock()
			}
		})
	}
	wg.Wait()
	return failed
}

// settled reports whether p is advanced or answered (p.logged closed).
func settled(p *pending) bool {
	select {
	case <-p.logged:
		return true
	default:
		return false
	}
}
