package archive

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/edgeseal/edgeseal/archive/state"
	"github.com/edgeseal/edgeseal/bundle/wire"
	"github.com/edgeseal/edgeseal/sync"
)

// Replicas. When the chain-state store is shared (state.Store.Shared:
// MariaDB), several archive processes admit bundles from the same
// devices into the same log. A device's bundles are then admitted under
// its lease in the store (state.Store.Lock), taken when the first of
// them is admitted and released once the last one in flight here is
// logged and its chain advanced (the first of two phases, twophase.go;
// its receipt is recorded and answered after): at most one process
// admits and logs a device's bundles at a time, and it reads the
// device's chain from the store when it takes the lease (what memory holds is dropped when another
// process advanced it meanwhile). Before it appends, the log's keys are
// brought up to the log's size once every append under way has ended
// (logkeys.go), so a bundle another process logged and did not advance
// (it died in between, its commit under way included) keeps its log
// index. A bundle waits for its device's lease at most HoldWait; one
// that arrives after a gap waits (at most GapWait) for another process
// to advance the device's chain, and is then judged again; past either
// wait it is answered "held" (CheckHeld): neither
// quarantined nor alerted, the agent sends it again soon. A chain
// Advance that fails fails its bundles (no answer: they come again),
// since another process would otherwise judge the next ones against the
// chain without them. A repeat is answered from the store's accepted
// bundles (wasAccepted), whichever replica accepted it.
//
// Costs: a lease holds a database connection while the device has
// bundles being admitted and logged here, and three round trips (lock, read, release)
// per burst of a device's bundles; a held bundle keeps its admitting
// goroutine (its device's lane in the MQTT subscriber: the other devices'
// are admitted meanwhile) for up to HoldWait.

// CheckHeld names a bundle answered before its device's previous bundle
// was committed: another replica may be committing it. The agent sends
// it again soon (sync.HeldCheck). Never quarantined nor alerted.
const CheckHeld = sync.HeldCheck

// DefaultHoldWait bounds how long a bundle waits in all for its device's
// lease (Options.HoldWait). A lease is busy while its holder admits and
// logs the device's bundles in flight there: only the device's own lane
// waits meanwhile, and a bundle answered held
// costs the agent a resend, so the wait is generous.
const DefaultHoldWait = 10 * time.Second

// DefaultGapWait bounds how long a bundle that comes after a gap waits
// for its predecessor to be committed elsewhere (Options.GapWait): short,
// since the predecessor may be queued behind it in this replica's lane
// for the device.
const DefaultGapWait = 2 * time.Second

// holdPoll is how often a held bundle reads its device's chain.
const holdPoll = 25 * time.Millisecond

// devLease is a device's lease held by this archive, pinned by the
// admission under way and by each of the device's bundles in flight.
type devLease struct {
	l    state.Lease
	pins int
}

// errBusy: the device's lease was not had within the hold wait.
var errBusy = errors.New("archive: the device is being admitted by another replica")

// pin takes the device's lease unless this archive holds it, waiting
// until deadline, and pins it; a lease taken now reloads the device's
// chain when the store's is not the one in memory. The caller holds the
// device lock.
func (a *Archive) pin(ctx context.Context, topic string, deadline time.Time) error {
	a.mu.Lock()
	if dl := a.leases[topic]; dl != nil {
		dl.pins++
		a.mu.Unlock()
		return nil
	}
	a.mu.Unlock()
	lctx, cancel := context.WithDeadline(ctx, deadline)
	l, err := a.chainStore.Lock(lctx, topic)
	cancel()
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if errors.Is(err, context.DeadlineExceeded) {
			return errBusy
		}
		return fmt.Errorf("archive: %w", err)
	}
	c, err := a.chainStore.Get(ctx, topic)
	if err != nil && !errors.Is(err, state.ErrNotFound) {
		_ = l.Release()
		return fmt.Errorf("archive: %w", err)
	}
	a.mu.Lock()
	if cur, ok := a.chains[topic]; !ok || cur.Version != c.Version {
		// Advanced elsewhere (or never read): judge on the store's.
		delete(a.chains, topic)
		delete(a.states, stateKey(topic, cur.Epoch))
		delete(a.states, stateKey(topic, c.Epoch))
	}
	a.leases[topic] = &devLease{l: l, pins: 1}
	a.mu.Unlock()
	return nil
}

// unpin drops a pin of the device's lease, releasing it with the last.
func (a *Archive) unpin(topic string) {
	a.mu.Lock()
	dl := a.leases[topic]
	if dl == nil {
		a.mu.Unlock()
		return
	}
	if dl.pins--; dl.pins > 0 {
		a.mu.Unlock()
		return
	}
	delete(a.leases, topic)
	a.mu.Unlock()
	if err := dl.l.Release(); err != nil {
		a.lg.Warn("device lease not released; the database releases it with the connection", "device", topic, "err", err)
	}
}

// dropChain forgets what memory holds of the device's chain (a failed
// Advance): the next lease reads the store's.
func (a *Archive) dropChain(topic string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	delete(a.chains, topic)
	prefix := topic + "#" // every epoch's (stateKey): rare, a scan will do
	for k := range a.states {
		if strings.HasPrefix(k, prefix) {
			delete(a.states, k)
		}
	}
}

// waitAdvance waits until the device's stored chain is no longer at
// version, or deadline; it reports whether it moved.
func (a *Archive) waitAdvance(ctx context.Context, topic string, version uint64, deadline time.Time) bool {
	t := time.NewTicker(holdPoll)
	defer t.Stop()
	for {
		c, err := a.chainStore.Get(ctx, topic)
		if err == nil && c.Version != version {
			return true
		}
		if err != nil && !errors.Is(err, state.ErrNotFound) {
			a.lg.Warn("chain state not read while a bundle is held", "device", topic, "err", err)
		}
		if !time.Now().Before(deadline) {
			return false
		}
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
		}
	}
}

// onlyGap reports whether a refusal is for a gap and nothing else.
func onlyGap(fails []failure) bool {
	if len(fails) == 0 {
		return false
	}
	for _, f := range fails {
		if f.check != CheckGap {
			return false
		}
	}
	return true
}

// held answers a bundle held past the wait: a signed rejection naming
// CheckHeld, not quarantined nor alerted.
func (a *Archive) held(digest [32]byte, topic, reason string) *Ticket {
	a.stats.held.Add(1)
	rj := &RejectionReport{BundleDigest: wire.FormatHash(digest), Device: topic, Time: wire.FormatTime(a.now()),
		Checks: []string{CheckHeld}, Reasons: []string{CheckHeld + ": " + reason}}
	k := a.cur.Load()
	reply, err := rj.Sign(k.keyID, k.key, k.tail()...)
	if err != nil {
		return answered(nil, err) // no answer: it comes again
	}
	a.lg.Info("bundle held: its predecessor is not committed", "device", topic, "bundle", rj.BundleDigest, "reason", reason)
	return answered(reply, &RejectedError{Rejection: rj})
}
