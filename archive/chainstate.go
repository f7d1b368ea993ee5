package archive

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"

	"github.com/edgeseal/edgeseal/archive/state"
	"github.com/edgeseal/edgeseal/bundle/archivesig"
	"github.com/edgeseal/edgeseal/bundle/merkle"
	"github.com/edgeseal/edgeseal/bundle/verify"
	"github.com/edgeseal/edgeseal/bundle/wire"
	"github.com/edgeseal/edgeseal/store"
)

// Chain state. Each device's chain state (its last accepted bundle and
// checkpoint, the verify state it left, the bundles of its epoch, the
// archive checkpoint of its last receipt, and every checkpoint accepted
// from it) lives in a state.Store (Options.State; by default a Badger
// store in Dir/state). Admission loads a device's chain the first time
// it sees the device and looks up the accepted checkpoints a bundle's
// statement names (fork and duplicate checks); the committer advances
// each device's chain once a group is durable, before answering it. The
// index journal stays the record: the store is completed from the index
// events Open reads (indexmark.go), and an event applied twice changes
// nothing (its checkpoint is recorded with its bundle's digest).

// chainStateDir is the default store's directory under Options.Dir.
const chainStateDir = "state"

// openChainState opens the default store unless Options.State is set.
func (a *Archive) openChainState(ctx context.Context) error {
	if a.opts.State != nil {
		a.chainStore, a.shared = a.opts.State, a.opts.State.Shared()
		return nil
	}
	dir := filepath.Join(a.opts.Dir, chainStateDir)
	if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		a.chainFresh = true // an index mark, if any, is not about it
	}
	s, err := state.OpenBadger(ctx, dir)
	if err != nil {
		return fmt.Errorf("archive: open chain state: %w", err)
	}
	a.chainStore, a.ownChainStore = s, true
	return nil
}

// loadState loads the device's chain into a.states (its era) and
// a.chains, unless they are there; a chain not in a.chains (dropped by
// a replica, replica.go) replaces the era's state too. The caller holds
// the device lock.
func (a *Archive) loadState(ctx context.Context, device string, era uint64) error {
	a.mu.Lock()
	_, okS := a.states[stateKey(device, era)]
	_, okC := a.chains[device]
	a.mu.Unlock()
	if okS && okC {
		return nil
	}
	c, err := a.chainStore.Get(ctx, device)
	if err != nil && !errors.Is(err, state.ErrNotFound) {
		return fmt.Errorf("archive: %w", err)
	}
	ds := &devState{cps: map[uint64][32]byte{}}
	if c.Version > 0 && c.Epoch == epochOf(era) && c.Verify != nil {
		st, err := verify.ParseState(c.Verify)
		if err != nil {
			return fmt.Errorf("archive: chain state of %s: %w", device, err)
		}
		ds.last, ds.lastBundle, ds.lastLogIndex, ds.bundles = st, c.Head, c.LogIndex, c.Bundles
		ds.cps[c.Size] = c.Root
		ds.rememberBundle(c.Size, c.Head)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if _, ok := a.chains[device]; !ok {
		a.chains[device] = c
		a.states[stateKey(device, era)] = ds
	} else if _, ok := a.states[stateKey(device, era)]; !ok {
		a.states[stateKey(device, era)] = ds
	}
	return nil
}

// maxCachedCps bounds the accepted checkpoints a devState keeps between
// look-ups.
const maxCachedCps = 64

// lookupCheckpoints puts the accepted checkpoints of the statement's
// checkpoint and previous checkpoint sizes, when the store has them, in
// ds (the caller holds the device lock, not a.mu).
func (a *Archive) lookupCheckpoints(ctx context.Context, ds *devState, device string, era uint64, sizes ...uint64) error {
	var found []state.Checkpoint
	for _, size := range sizes {
		if size == 0 {
			continue
		}
		cp, err := a.chainStore.Checkpoint(ctx, device, epochOf(era), size)
		if errors.Is(err, state.ErrNotFound) {
			continue
		}
		if err != nil {
			return fmt.Errorf("archive: %w", err)
		}
		found = append(found, cp)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(ds.cps) > maxCachedCps {
		clear(ds.cps)
		clear(ds.cpBundle)
		if ds.last != nil {
			if cp, err := merkle.ParseCheckpoint([]byte(ds.last.Checkpoint)); err == nil {
				ds.cps[cp.Size] = cp.Root
				ds.rememberBundle(cp.Size, ds.lastBundle)
			}
		}
	}
	for _, cp := range found {
		ds.cps[cp.Size] = cp.Root
		ds.rememberBundle(cp.Size, cp.Bundle)
	}
	return nil
}

// stepChain moves c by an accepted bundle of epoch (a bundle of an
// earlier epoch than c's leaves it). verifyJSON is the verify state the
// bundle left.
func stepChain(c *state.Chain, epoch uint64, digest [32]byte, logIndex uint64, cp merkle.Checkpoint, verifyJSON []byte) {
	epoch = epochOf(epoch)
	if epoch < c.Epoch {
		return
	}
	if epoch > c.Epoch {
		c.Epoch, c.Bundles, c.Head, c.LogIndex, c.Size, c.Root, c.Verify = epoch, 0, [32]byte{}, 0, 0, [32]byte{}, nil
	}
	c.Bundles++
	if c.Verify == nil || cp.Size >= c.Size {
		c.Head, c.LogIndex, c.Size, c.Root, c.Verify = digest, logIndex, cp.Size, cp.Root, verifyJSON
	}
}

// chainAdvance is one device's Advance.
type chainAdvance struct {
	device string
	from   state.Chain
	to     state.Chain
	cps    []state.Checkpoint
}

// advanceChains advances the chains of the group's accepted bundles (in
// order), a device at a time in parallel, recording each bundle with its
// receipt (state.Chain.Accepted). A failure leaves the chain as it was
// and the index mark stale, so that the next Open applies the events
// again; it is logged, and the bundles are answered all the same: their
// index events are durable. With a shared store (replicas) a failure
// instead fails the device's bundles (returned by device: no answer,
// they come again) and drops its chain from memory: another replica
// judges the next bundles on the store's chain, which must hold them.
// (Replicas advance in two phases instead: twophase.go.)
func (a *Archive) advanceChains(ctx context.Context, ps []*pending) map[[32]byte]error {
	if len(ps) == 0 {
		return nil
	}
	var fmu sync.Mutex
	failed := map[[32]byte]error{}
	failDevice := func(device string, err error) {
		for _, q := range ps {
			if q.topic == device {
				failed[q.digest] = err
			}
		}
	}
	byDev := map[string]*chainAdvance{}
	var order []*chainAdvance
	a.mu.Lock()
	for _, p := range ps {
		v := byDev[p.topic]
		if v == nil {
			c := a.chains[p.topic]
			v = &chainAdvance{device: p.topic, from: c, to: c}
			byDev[p.topic] = v
			order = append(order, v)
		}
		vj, err := p.st.Marshal()
		if err != nil {
			a.mu.Unlock()
			a.chainFailed(p.topic, err)
			if a.shared {
				for _, q := range ps {
					a.dropChain(q.topic)
					failDevice(q.topic, err)
				}
			}
			return failed
		}
		stepChain(&v.to, p.era, p.digest, p.seq, p.cp, vj)
		if p.rsize > 0 {
			v.to.ReceiptLogIndex, v.to.ReceiptSize, v.to.ReceiptRoot = p.seq, p.rsize, p.rroot
		}
		v.cps = append(v.cps, state.Checkpoint{Epoch: epochOf(p.era), Size: p.cp.Size, Root: p.cp.Root, Bundle: p.digest})
		if len(p.receipt) > 0 {
			v.to.Accepted = append(v.to.Accepted, state.Accepted{Bundle: p.digest, Device: p.topic, LogIndex: p.seq, Receipt: p.receipt})
		}
	}
	a.mu.Unlock()
	var wg sync.WaitGroup
	for _, v := range order {
		wg.Go(func() {
			res, err := a.chainStore.Advance(ctx, v.device, v.from.Version, v.to, v.cps...)
			if err != nil && a.shared {
				// Under the device's lease nobody else advances it: a
				// conflict is a lease lost, like any other failure.
				a.lg.Error("chain state not advanced; the device's bundles are not answered and come again", "device", v.device, "err", err)
				a.dropChain(v.device)
				fmu.Lock()
				failDevice(v.device, fmt.Errorf("archive: chain state of %s: %w", v.device, err))
				fmu.Unlock()
				return
			}
			if ce, ok := errors.AsType[*state.ConflictError](err); ok {
				// The index is the record and this archive its only
				// writer: what the store holds is behind or was
				// written by an earlier attempt; go on from it.
				a.lg.Warn("chain state of the device was not the one expected; advancing from what is stored", "device", v.device, "err", err)
				from := uint64(0)
				if ce.Stored != nil {
					from = ce.Stored.Version
				}
				res, err = a.chainStore.Advance(ctx, v.device, from, v.to, v.cps...)
			}
			if err != nil {
				a.chainFailed(v.device, err)
				res = v.to // what memory holds; the stored version is unchanged
				res.Version = v.from.Version
			}
			res.Accepted = nil
			a.mu.Lock()
			a.chains[v.device] = res
			a.mu.Unlock()
		})
	}
	wg.Wait()
	return failed
}

func (a *Archive) chainFailed(device string, err error) {
	a.markStale.Store(true)
	a.lg.Error("chain state not advanced; the next start applies the index events again", "device", device, "err", err)
}

// receiptCheckpoint is the archive checkpoint a receipt was signed
// against.
func receiptCheckpoint(receipt []byte) (merkle.Checkpoint, error) {
	_, r, err := archivesig.ParseReceipt(receipt)
	if err != nil {
		return merkle.Checkpoint{}, err
	}
	return r.ArchiveRoot()
}

// chainReplay applies accept events read from the index to the store
// (Open: the events after the index mark, or every event once when there
// is no mark), each device's in batches.
type chainReplay struct {
	a    *Archive
	devs map[string]*replayDev
}

type replayDev struct {
	c       state.Chain
	cps     []state.Checkpoint
	receipt [32]byte // digest of the receipt of the highest log index, to read at flush
	rcpt    bool
	bytes   int // of the receipts in c.Accepted
}

// replayBatch is the checkpoints of one Advance during a replay,
// replayBytes the receipt bytes (the Badger store's largest write stays
// well under its bound).
const (
	replayBatch = 256
	replayBytes = 256 << 10
)

func newChainReplay(a *Archive) *chainReplay {
	return &chainReplay{a: a, devs: map[string]*replayDev{}}
}

func (cr *chainReplay) apply(ctx context.Context, ev *acceptEvent, digest [32]byte, cp merkle.Checkpoint, receipt [32]byte) error {
	d := cr.devs[ev.Device]
	if d == nil {
		c, err := cr.a.chainStore.Get(ctx, ev.Device)
		if err != nil && !errors.Is(err, state.ErrNotFound) {
			return fmt.Errorf("archive: %w", err)
		}
		d = &replayDev{c: c}
		cr.devs[ev.Device] = d
	}
	epoch := epochOf(ev.Epoch)
	got, err := cr.a.chainStore.Checkpoint(ctx, ev.Device, epoch, cp.Size)
	switch {
	case err == nil && got.Bundle == digest:
		return nil // applied before
	case err != nil && !errors.Is(err, state.ErrNotFound):
		return fmt.Errorf("archive: %w", err)
	}
	stepChain(&d.c, epoch, digest, ev.LogIndex, cp, []byte(ev.State))
	// The bundle with its receipt, as an admission records it
	// (wasAccepted answers its repeats from the store).
	rb, err := cr.a.index.Payload(receipt)
	if err != nil {
		return fmt.Errorf("archive: receipt sha256:%x: %w", receipt, err)
	}
	d.c.Accepted = append(d.c.Accepted, state.Accepted{Bundle: digest, Device: ev.Device, LogIndex: ev.LogIndex, Receipt: rb})
	d.bytes += len(rb)
	if ev.LogIndex >= d.c.ReceiptLogIndex {
		d.c.ReceiptLogIndex, d.receipt, d.rcpt = ev.LogIndex, receipt, true
	}
	d.cps = append(d.cps, state.Checkpoint{Epoch: epoch, Size: cp.Size, Root: cp.Root, Bundle: digest})
	if len(d.cps) >= replayBatch || d.bytes >= replayBytes {
		return cr.flushDev(ctx, ev.Device, d)
	}
	return nil
}

func (cr *chainReplay) flushDev(ctx context.Context, device string, d *replayDev) error {
	if len(d.cps) == 0 {
		return nil
	}
	if d.rcpt {
		b, err := cr.a.index.Payload(d.receipt)
		if err != nil {
			return fmt.Errorf("archive: receipt sha256:%x: %w", d.receipt, err)
		}
		cp, err := receiptCheckpoint(b)
		if err != nil {
			return fmt.Errorf("archive: receipt sha256:%x: %w", d.receipt, err)
		}
		d.c.ReceiptSize, d.c.ReceiptRoot, d.rcpt = cp.Size, cp.Root, false
	}
	res, err := cr.a.chainStore.Advance(ctx, device, d.c.Version, d.c, d.cps...)
	if _, ok := errors.AsType[*state.ConflictError](err); ok && cr.a.shared {
		// Another replica advanced the device meanwhile: these events'
		// bundles were not answered (their advance failed) or are in
		// the store already; what was not answered comes again.
		cr.a.lg.Warn("index events not applied to the shared chain state: the device's chain moved", "device", device, "err", err)
		delete(cr.devs, device)
		return nil
	}
	if err != nil {
		return fmt.Errorf("archive: %w", err)
	}
	d.c, d.cps, d.bytes = res, nil, 0
	return nil
}

// flush writes what is left.
func (cr *chainReplay) flush(ctx context.Context) error {
	for device, d := range cr.devs {
		if err := cr.flushDev(ctx, device, d); err != nil {
			return err
		}
	}
	return nil
}

// acceptedOf is what the index recorded of an accepted bundle; false
// when the archive did not accept it.
func (a *Archive) acceptedOf(digest [32]byte) (accepted, bool, error) {
	seq, err := a.index.Lookup(acceptKey(digest))
	if errors.Is(err, store.ErrNotFound) {
		return accepted{}, false, nil
	}
	if err != nil {
		return accepted{}, false, fmt.Errorf("archive: index: %w", err)
	}
	rec, err := a.index.Record(seq)
	if err != nil {
		return accepted{}, false, fmt.Errorf("archive: index: %w", err)
	}
	// Only what is needed of the event (the key names an accept event,
	// which Open or an earlier read parsed whole).
	var ev struct {
		Type     string `json:"type"`
		Device   string `json:"device"`
		LogIndex uint64 `json:"logIndex"`
		Receipt  string `json:"receipt"`
		Time     string `json:"time"`
	}
	if err := json.Unmarshal(rec, &ev); err != nil || ev.Type != eventAccept {
		return accepted{}, false, fmt.Errorf("archive: index record %d is not an accept event (%v)", seq, err)
	}
	rd, err := wire.ParseHash(ev.Receipt)
	if err != nil {
		return accepted{}, false, fmt.Errorf("archive: index record %d: %w", seq, err)
	}
	return accepted{device: ev.Device, logIndex: ev.LogIndex, receipt: rd, at: ev.Time}, true, nil
}

// acceptedAll is every accepted bundle the index records (Check: a read
// of the whole index).
func (a *Archive) acceptedAll(ctx context.Context) (map[[32]byte]accepted, error) {
	acc := map[[32]byte]accepted{}
	err := a.index.Records(ctx, 0, a.index.Size(), func(seq uint64, rec []byte) error {
		if isOperatorEvent(rec) || isAdminsEvent(rec) || isRekeyEvent(rec) {
			return nil
		}
		ev, digest, _, _, err := parseAccept(rec)
		if err != nil {
			return fmt.Errorf("archive: index record %d: %w", seq, err)
		}
		rd, err := wire.ParseHash(ev.Receipt)
		if err != nil {
			return fmt.Errorf("archive: index record %d: %w", seq, err)
		}
		acc[digest] = accepted{device: ev.Device, logIndex: ev.LogIndex, receipt: rd, at: ev.Time}
		return nil
	})
	return acc, err
}
