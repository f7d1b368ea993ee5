package archive

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/edgeseal/edgeseal/bundle/merkle"
	"github.com/edgeseal/edgeseal/bundle/verify"
	"github.com/edgeseal/edgeseal/bundle/wire"
	"github.com/edgeseal/edgeseal/store"
)

// The index is a second store.Journal (dir index/) whose records are
// accept events, one per accepted bundle, written after the bundle's log
// entry; the signed receipt travels with the event as a payload in the
// same commit, keyed by the bundle's digest (acceptKey: the duplicate
// look-up). Open reads the events after the index mark into the
// chain-state store (indexmark.go, chainstate.go). A log entry without
// its event (a crash between the two writes) is completed at Open from
// the stored bundle.

const eventAccept = "bundle.accept"

type acceptEvent struct {
	V          int             `json:"v"`
	Type       string          `json:"type"`
	Time       string          `json:"time"`
	Bundle     string          `json:"bundle"` // sha256:..
	Device     string          `json:"device"`
	LogIndex   uint64          `json:"logIndex"`
	Checkpoint string          `json:"checkpoint"`      // the device checkpoint body
	State      json.RawMessage `json:"state"`           // verify.State after the bundle
	Receipt    string          `json:"receipt"`         // sha256:.. of the receipt payload
	Epoch      uint64          `json:"epoch,omitempty"` // the device's epoch, absent: 1
	// Admins are the key ids of the policy administrators the bundle's
	// policy.change records name ([] when none; absent in events of
	// earlier versions: separation.go).
	Admins []string `json:"admins"`
}

// accepted is what the archive remembers of an accepted bundle.
type accepted struct {
	device   string
	logIndex uint64
	receipt  [32]byte
	at       string // when it was accepted (its accept event's time)
	// receiptBytes is the receipt itself when the chain-state store
	// gave it (wasAccepted); nil: read it from the index by receipt.
	receiptBytes []byte
	// pending: the store recorded the bundle without its receipt
	// (state.Accepted.Pending; finishUnreceipted).
	pending []byte
}

// devState is a device's verification state: what is durable, and the
// speculative state its bundles in flight (verified, not yet durable)
// will leave. Guarded by Archive.mu.
type devState struct {
	last *verify.State
	cps  map[uint64][32]byte // accepted checkpoints: size -> root

	cpBundle map[uint64][32]byte // accepted checkpoints: size -> bundle digest (duplicate.go)

	lastBundle   [32]byte // the bundle that left last
	lastLogIndex uint64   // its log index
	bundles      uint64   // bundles accepted

	inflight int                 // bundles of the current epoch in flight
	specLast *verify.State       // state after the newest in flight
	specCps  map[uint64][32]byte // their checkpoints
	tail     *pending            // the newest in flight
	epoch    uint64              // bumped when a bundle in flight fails

	refused *refusal // the last refused bundle signed by the device (refused.go)
}

// view is the state the next bundle is verified against.
func (ds *devState) view() *verify.State {
	if ds.inflight > 0 {
		return ds.specLast
	}
	return ds.last
}

// root is the root of the checkpoint of size accepted or in flight.
func (ds *devState) root(size uint64) ([32]byte, bool) {
	if r, ok := ds.cps[size]; ok {
		return r, true
	}
	r, ok := ds.specCps[size]
	return r, ok
}

func (ds *devState) resetSpec() {
	ds.inflight, ds.specLast, ds.specCps, ds.tail = 0, nil, nil, nil
}

func acceptKey(digest [32]byte) []byte { return append([]byte("accept:"), digest[:]...) }

// replay reads the index events after the index mark (every event when
// there is none: indexmark.go): accept events go to the chain-state store
// (chainstate.go), and the counts and admin keys the mark carries are
// brought up to date. Then every rekey statement, those the mark lists
// and those read, is applied to the registry (applyLoggedRekey:
// unchanged when it is there): the registry follows the log.
func (a *Archive) replay(ctx context.Context) error {
	m, err := readIndexMark(a.opts.Dir)
	if err != nil {
		return err
	}
	if m != nil && a.chainFresh {
		a.lg.Warn("the chain-state store is new beside an index mark (state/ removed or not restored): reading the whole index once", "mark", indexMarkFile)
		m = nil
	}
	var from uint64
	if m != nil {
		if m.Index > a.index.Size() {
			return fmt.Errorf("archive: index mark %s is at event %d, the index has %d: remove it to read the index whole",
				indexMarkFile, m.Index, a.index.Size())
		}
		from, a.rekeys, a.opStatements, a.adminsEvents, a.markLog = m.Index, m.Rekeys, m.OpStatements, m.AdminsEvents, m.Log
		for kid, dev := range m.Admins {
			a.idxAdmins.add(kid, dev)
		}
	} else if a.index.Size() > 0 {
		a.lg.Info("reading the whole index once to fill the chain-state store", "events", a.index.Size())
	}
	cr := newChainReplay(a)
	err = a.index.Records(ctx, from, a.index.Size(), func(seq uint64, rec []byte) error {
		a.replayed++
		if isOperatorEvent(rec) {
			a.opStatements++
			return nil
		}
		if isAdminsEvent(rec) {
			ev, err := parseAdminsEvent(rec)
			if err != nil {
				return fmt.Errorf("archive: index record %d: %w", seq, err)
			}
			a.adminsEvents++
			for _, ad := range ev.Admins {
				a.idxAdmins.add(ad.Key, ad.Device)
			}
			a.idxAdmins.legacy = nil // covered
			return nil
		}
		if isRekeyEvent(rec) {
			ev, err := parseRekeyEvent(rec)
			if err != nil {
				return fmt.Errorf("archive: index record %d: %w", seq, err)
			}
			a.rekeys = append(a.rekeys, ev.LogIndex)
			return nil
		}
		ev, digest, _, cp, err := parseAccept(rec)
		if err != nil {
			return fmt.Errorf("archive: index record %d: %w", seq, err)
		}
		if ev.Admins == nil {
			a.idxAdmins.legacy = append(a.idxAdmins.legacy, digest)
		}
		for _, kid := range ev.Admins {
			a.idxAdmins.add(kid, ev.Device)
		}
		rd, _ := wire.ParseHash(ev.Receipt)
		return cr.apply(ctx, ev, digest, cp, rd)
	})
	if err != nil {
		return err
	}
	if err := cr.flush(ctx); err != nil {
		return err
	}
	// Every rekey, not only those read now: a few, one log record each.
	for _, li := range a.rekeys {
		if err := a.applyLoggedRekey(ctx, li); err != nil {
			return err
		}
	}
	return nil
}

func parseAccept(rec []byte) (*acceptEvent, [32]byte, *verify.State, merkle.Checkpoint, error) {
	var ev acceptEvent
	dec := json.NewDecoder(bytes.NewReader(rec))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&ev); err != nil {
		return nil, [32]byte{}, nil, merkle.Checkpoint{}, err
	}
	if ev.V != 1 || ev.Type != eventAccept {
		return nil, [32]byte{}, nil, merkle.Checkpoint{}, fmt.Errorf("event %q version %d", ev.Type, ev.V)
	}
	digest, err := wire.ParseHash(ev.Bundle)
	if err != nil {
		return nil, digest, nil, merkle.Checkpoint{}, err
	}
	if _, err := wire.ParseHash(ev.Receipt); err != nil {
		return nil, digest, nil, merkle.Checkpoint{}, err
	}
	st, err := verify.ParseState(ev.State)
	if err != nil {
		return nil, digest, nil, merkle.Checkpoint{}, err
	}
	cp, err := merkle.ParseCheckpoint([]byte(ev.Checkpoint))
	return &ev, digest, st, cp, err
}

// remember records an accepted bundle in its device's state in memory
// and its policy admin keys (the chain-state store is advanced apart:
// advanceChains).
func (a *Archive) remember(p *pending) {
	ds, digest, logIndex, st, cp := p.ds, p.digest, p.seq, p.st, p.cp
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, kid := range p.admins { // what its accept event records (separation.go)
		a.idxAdmins.add(kid, p.topic)
	}
	if a.legacyEvents {
		a.idxAdmins.legacy = append(a.idxAdmins.legacy, digest)
	}
	ds.cps[cp.Size] = cp.Root
	ds.rememberBundle(cp.Size, digest)
	ds.bundles++
	if ds.last == nil || cp.Size >= mustSize(ds.last) {
		ds.last, ds.lastBundle, ds.lastLogIndex = st, digest, logIndex
	}
}

func stateKey(device string, epoch uint64) string {
	return fmt.Sprintf("%s#%d", device, epochOf(epoch))
}

// stateOf returns the state of the device's epoch (a.mu held): each
// epoch is a chain of its own. Load it first (loadState): one created
// here is empty.
func (a *Archive) stateOf(device string, epoch uint64) *devState {
	k := stateKey(device, epoch)
	ds := a.states[k]
	if ds == nil {
		ds = &devState{cps: map[uint64][32]byte{}}
		a.states[k] = ds
	}
	return ds
}

func mustSize(s *verify.State) uint64 {
	cp, err := merkle.ParseCheckpoint([]byte(s.Checkpoint))
	if err != nil {
		return 0
	}
	return cp.Size
}

// acceptEntry is the index entry of an accepted bundle: the accept event,
// keyed by the bundle digest, with its receipt as a payload.
func (a *Archive) acceptEntry(digest [32]byte, device string, epoch, logIndex uint64, st *verify.State, receipt []byte, admins []string, at string) (store.Entry, error) {
	rd := sha256.Sum256(receipt)
	state, err := st.Marshal()
	if err != nil {
		return store.Entry{}, err
	}
	ev, err := json.Marshal(acceptEvent{
		V: 1, Type: eventAccept, Time: at, Bundle: wire.FormatHash(digest), Device: device,
		LogIndex: logIndex, Checkpoint: st.Checkpoint, State: state, Receipt: wire.FormatHash(rd), Epoch: epochField(epoch),
		Admins: a.eventAdmins(admins),
	})
	if err != nil {
		return store.Entry{}, fmt.Errorf("archive: index: %w", err)
	}
	return store.Entry{
		Build:    func(uint64, [32]byte) ([]byte, error) { return ev, nil },
		Payloads: []store.Payload{{Digest: rd, Data: receipt}},
		Key:      acceptKey(digest),
	}, nil
}

// eventAdmins is the admins member of an accept event: never nil, so that
// it is written ([] when none), unless a test asks for the events of
// earlier versions.
func (a *Archive) eventAdmins(admins []string) []string {
	if a.legacyEvents {
		return nil
	}
	return append([]string{}, admins...)
}

// recordedReceipt is the receipt digest of index record seq.
func (a *Archive) recordedReceipt(seq uint64) ([32]byte, error) {
	rec, err := a.index.Record(seq)
	if err != nil {
		return [32]byte{}, fmt.Errorf("archive: index: %w", err)
	}
	old, _, _, _, err := parseAccept(rec)
	if err != nil {
		return [32]byte{}, fmt.Errorf("archive: index record %d: %w", seq, err)
	}
	return wire.ParseHash(old.Receipt)
}

// storedReceipt returns the receipt kept for an accepted bundle.
func (a *Archive) storedReceipt(acc accepted) ([]byte, error) {
	if acc.receiptBytes != nil {
		return acc.receiptBytes, nil
	}
	b, err := a.index.Payload(acc.receipt)
	if err != nil {
		return nil, fmt.Errorf("archive: receipt sha256:%x: %w", acc.receipt, err)
	}
	return b, nil
}

// recover completes log entries whose accept event a crash lost, by
// receiving their stored bundles again (in log order), and rekey
// statements whose index event a crash lost.
func (a *Archive) recover(ctx context.Context) error {
	if a.shared {
		// Replicas: the log is every replica's, this index this one's.
		// A bundle logged and not answered is sent again by its device
		// and keeps its log index (logengine.go); nothing to walk.
		return nil
	}
	a.mu.Lock()
	n := a.index.Size() - a.adminsEvents // the events of log entries
	from := a.markLog
	a.mu.Unlock()
	size := a.log.size()
	if n+a.logKeyEntries() >= size {
		return nil
	}
	return a.log.records(ctx, min(from, size), size, func(seq uint64, rec []byte) error {
		lr, err := parseLogRecord(rec)
		if err != nil {
			return fmt.Errorf("archive: log record %d: %w", seq, err)
		}
		if lr.stmt != nil {
			return a.recoverRekey(ctx, lr.stmt, seq)
		}
		if lr.entry == nil { // an archive key announcement
			return nil
		}
		e := lr.entry
		digest, err := wire.ParseHash(e.BundleDigest)
		if err != nil {
			return fmt.Errorf("archive: log record %d: %w", seq, err)
		}
		if _, ok, err := a.acceptedOf(digest); err != nil || ok {
			return err
		}
		raw, err := a.objects.Get(ctx, digest)
		if err != nil {
			return fmt.Errorf("archive: recover log record %d: %w", seq, err)
		}
		site, name, _ := cutDevice(e.Device)
		if _, err := a.Receive(ctx, site, name, raw); err != nil {
			if _, ok := errors.AsType[*RejectedError](err); ok {
				// Logged and receipted-to-be once, refused now (the
				// device was revoked since, say): never fail Open on it.
				a.lg.Error("a logged bundle whose index event was lost is refused now; left without receipt",
					"bundle", e.BundleDigest, "logIndex", seq, "err", err)
				return nil
			}
			return fmt.Errorf("archive: recover log record %d: %w", seq, err)
		}
		a.lg.Warn("recovered an accepted bundle whose index event was lost", "bundle", e.BundleDigest, "logIndex", seq)
		return nil
	})
}
