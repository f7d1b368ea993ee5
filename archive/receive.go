package archive

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/edgeseal/edgeseal/archive/state"
	"github.com/edgeseal/edgeseal/bundle"
	"github.com/edgeseal/edgeseal/bundle/merkle"
	"github.com/edgeseal/edgeseal/bundle/verify"
	"github.com/edgeseal/edgeseal/bundle/wire"
	"github.com/edgeseal/edgeseal/sync"
)

// Checks the archive runs beyond verify.Verify (rejections name them
// beside the verify.Check* names).
const (
	CheckTopic    = "archive.topic"    // the topic's device is the bundle's origin and signer
	CheckRead     = "archive.read"     // the bytes are a well-formed bundle within the limits
	CheckEnrolled = "archive.enrolled" // the device is enrolled
	CheckApproved = "archive.approved" // the device is approved (not pending)
	CheckRevoked  = "archive.revoked"  // the device is not revoked
	CheckFork     = "archive.fork"     // consistent with every checkpoint accepted (ALARM)
	CheckReplay   = "archive.replay"   // beyond the last accepted checkpoint
	CheckGap      = sync.GapCheck      // starts at the last accepted checkpoint
	CheckCounter  = "archive.counter"  // NV counter above the last accepted
	CheckClock    = "archive.clock"    // TPM clock forward (or a later boot)
	CheckEpoch    = "archive.epoch"    // not signed by the key of a closed epoch
	CheckRekey    = "archive.rekey"    // not signed by a new key waiting for a rekey
	CheckKey      = "archive.key"      // sealed by a key of the device (hint: a rekey)
)

type failure struct {
	check, reason string
	alarm         bool
}

// Receive takes one bundle that arrived as site/device (the MQTT topic's
// device, or the bundle's own origin for removable media) and answers it.
//
// Accepted (verified end to end against the device's approved trust and
// last accepted state, plus the archive checks): stored write-once,
// appended to the archive log, and reply is the signed receipt, err nil.
// A bundle accepted before (same digest) is not stored twice and gets its
// receipt again, or a fresh one the device can check (repeat.go). Refused: kept in quarantine with its reason,
// alerted, and reply is the signed rejection with err a *RejectedError.
// Any other error is a failure to process (disk, context): no reply, the
// bundle should be delivered again later. Receive is Admit and Wait.
func (a *Archive) Receive(ctx context.Context, site, device string, raw []byte) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return a.AdmitHashed(ctx, site, device, wire.HashBytes(raw)).Wait(ctx)
}

// Admit is Receive for a caller that pipelines bundles: it runs the
// checks on the caller's goroutine and returns a Ticket whose Wait gives
// Receive's answer, a receipt only once the bundle, its log entry, the
// receipt and the index event are durable. A device's bundles are
// verified in the order Admit is called for them (call it for a device's
// bundles one at a time, in arrival order, as the MQTT subscriber's lane
// of the device does), each against the state the device's bundles still
// in flight will leave; the next Admit need not wait for the previous
// Ticket. Admits of different devices may run at once (they share the
// group commits); a device's bundle held here (replicas) holds up only
// that device's next ones. Bundles in flight are made
// durable in groups (see pipeline.go). A refusal judged against bundles
// in flight waits for them and is judged again on what is durable.
// digest must be the SHA-256 of raw (sync.Delivery.Digest is checked by
// the assembler; the object store checks it again before storing: use
// AdmitHashed to spare that pass). raw must not change until the Ticket
// is answered (the bundle is read in place).
func (a *Archive) Admit(ctx context.Context, site, device string, raw []byte, digest [32]byte) *Ticket {
	return a.admit(ctx, site, device, raw, digest, wire.Hashed{})
}

// AdmitHashed is Admit of bytes hashed by wire.HashBytes
// (sync.Delivery.Hashed): their digest was computed over exactly these
// bytes, so an object store that is a HashedPutter stores them without
// hashing them again. h must be Valid.
func (a *Archive) AdmitHashed(ctx context.Context, site, device string, h wire.Hashed) *Ticket {
	if !h.Valid() {
		return answered(nil, errors.New("archive: admit: bytes not hashed by wire.HashBytes"))
	}
	return a.admit(ctx, site, device, h.Bytes(), h.Sum(), h)
}

// admit is Admit; h, when Valid, is raw with digest (AdmitHashed).
func (a *Archive) admit(ctx context.Context, site, device string, raw []byte, digest [32]byte, h wire.Hashed) *Ticket {
	a.adm.begin() // the export indexer yields meanwhile
	defer a.adm.endCall()
	if err := ctx.Err(); err != nil {
		return answered(nil, err)
	}
	topic := site + "/" + device
	if t := a.known(ctx, digest, topic); t != nil {
		return t
	}
	if err := wire.CheckDevice(topic); err != nil {
		return answered(a.refuse(ctx, digest, topic, raw, false, nil, failure{check: CheckTopic, reason: err.Error()}))
	}
	b, err := bundle.ReadBytes(raw, a.opts.Limits)
	if err != nil {
		return answered(a.refuse(ctx, digest, topic, raw, false, nil, failure{check: CheckRead, reason: err.Error()}))
	}
	if _, info, err := a.trusted(ctx, topic); err != nil {
		return a.untrusted(ctx, digest, topic, raw, info, err)
	}
	a.takeContentKeyRequests(ctx, false)
	_, keep, rfail := a.retentionOf(b)

	l := a.deviceLock(topic)
	l.Lock()
	defer l.Unlock()
	// deadline bounds the waits for the device's lease; gapDeadline, set
	// at the first gap, the waits for the chain to move.
	deadline := time.Now().Add(a.opts.HoldWait)
	var gapDeadline time.Time
	pinned := false // a pin of the device's lease (replica.go) this admission holds
	if a.shared {
		if err := a.pin(ctx, topic, deadline); errors.Is(err, errBusy) {
			return a.held(digest, topic, "another replica is admitting the device's bundles")
		} else if err != nil {
			return answered(nil, err)
		}
		pinned = true
		defer func() {
			if pinned {
				a.unpin(topic)
			}
		}()
	}
	if t := a.known(ctx, digest, topic); t != nil {
		return t
	}
	// Looked up again under the device lock: a rekey (which holds it) is
	// seen whole, before or after.
	trust, info, err := a.trusted(ctx, topic)
	if err != nil {
		return a.untrusted(ctx, digest, topic, raw, info, err)
	}
	era := info.CurrentEpoch()
	_, st, stErr := b.Statement()
	if stErr != nil {
		st = nil
	}
	if err := a.loadState(ctx, topic, era); err != nil {
		return answered(nil, err)
	}
	for {
		a.mu.Lock()
		ds := a.stateOf(topic, era)
		a.mu.Unlock()
		if stErr == nil {
			if err := a.lookupCheckpoints(ctx, ds, topic, era, statementSizes(&st.Predicate)...); err != nil {
				return answered(nil, err)
			}
		}
		a.mu.Lock()
		last, epoch, tail := ds.view(), ds.epoch, ds.tail
		a.mu.Unlock()

		rep := verify.Verify(b, trust, last)
		fails := append(topicChecks(b, st, topic), keyChecks(info, st)...)
		stale := false
		if rep.OK() {
			var cf []failure
			cf, stale = a.cipherChecks(b)
			fails = append(fails, cf...)
		}
		if rfail != nil {
			fails = append(fails, *rfail)
		}
		var cp merkle.Checkpoint
		if rep.OK() {
			if cp, err = merkle.ParseCheckpoint([]byte(rep.State.Checkpoint)); err != nil {
				return answered(nil, err)
			}
		}
		a.mu.Lock()
		if epoch != ds.epoch { // a bundle in flight failed meanwhile
			a.mu.Unlock()
			continue
		}
		if stErr == nil && signedByDevice(rep) {
			fails = append(fails, sequenceChecks(last, ds.root, &st.Predicate, ds.refused)...)
		}
		if stErr == nil {
			fails = duplicateOf(ds, digest, &st.Predicate, fails)
		}
		if rep.OK() && len(fails) == 0 {
			p := &pending{t: &Ticket{done: make(chan struct{})}, logged: make(chan struct{}), digest: digest, topic: topic, raw: raw, st: rep.State, cp: cp, ds: ds,
				era: era, put: make(chan struct{}), admins: adminKeyIDs(b), staleKey: stale}
			if keep > 0 {
				p.until = a.now().Add(keep)
			}
			p.pinned, pinned = pinned, false
			a.register(p)
			a.mu.Unlock()
			if a.gate != nil {
				a.learnFrom(ctx, a.gate, topic, p.admins)
			}
			// The object is written from now on (write-once, content
			// addressed: harmless if the bundle then fails to commit).
			go func() {
				defer close(p.put)
				p.putErr = a.putRetained(digest, raw, h, p.until)
			}()
			if err := a.enqueue(ctx, p); err != nil {
				<-p.put
				a.unregister(p, err)
			}
			return p.t
		}
		if a.shared && (tail == nil || settled(tail)) && onlyGap(fails) {
			// The predecessor may be on its way through another
			// replica (the bundles in flight here are advanced:
			// twophase.go): wait for the chain to move, without the
			// lease.
			version := a.chains[topic].Version
			a.mu.Unlock()
			a.unpin(topic)
			pinned = false
			l.Unlock()
			if gapDeadline.IsZero() {
				gapDeadline = time.Now().Add(a.opts.GapWait)
				if gapDeadline.After(deadline) {
					gapDeadline = deadline
				}
			}
			moved := a.waitAdvance(ctx, topic, version, gapDeadline)
			l.Lock()
			if err := ctx.Err(); err != nil {
				return answered(nil, err)
			}
			if !moved {
				return a.held(digest, topic, fails[0].reason)
			}
			if err := a.pin(ctx, topic, deadline); errors.Is(err, errBusy) {
				return a.held(digest, topic, "another replica is admitting the device's bundles")
			} else if err != nil {
				return answered(nil, err)
			}
			pinned = true
			if t := a.known(ctx, digest, topic); t != nil {
				return t
			}
			if err := a.loadState(ctx, topic, era); err != nil {
				return answered(nil, err)
			}
			continue
		}
		if tail == nil && stErr == nil && signedByDevice(rep) {
			ds.refused = refusalOf(digest, &st.Predicate, fails, rep, ds.refused)
		}
		a.mu.Unlock()
		if tail == nil {
			if stErr == nil && !signedByDevice(rep) {
				efs, erep := epochChecks(b, st, info)
				fails = append(fails, efs...)
				if erep != nil {
					rep = erep
				}
			}
			return answered(a.refuse(ctx, digest, topic, raw, true, rep, fails...))
		}
		// Refused against bundles in flight: judge it on what they leave
		// (replicas: once they are advanced).
		wait := tail.t.done
		if a.shared && !settled(tail) {
			wait = tail.logged
		}
		select {
		case <-wait:
		case <-ctx.Done():
			return answered(nil, ctx.Err())
		}
	}
}

// untrusted refuses a bundle of a device that is not approved (err from
// Devices.Trusted); any other error is returned without an answer.
func (a *Archive) untrusted(ctx context.Context, digest [32]byte, topic string, raw []byte, info DeviceInfo, err error) *Ticket {
	de, ok := errors.AsType[*DeviceError](err)
	if !ok {
		return answered(nil, err)
	}
	f := failure{check: CheckEnrolled, reason: "device " + topic + " is not enrolled"}
	switch de.Status {
	case StatusPending:
		f = failure{check: CheckApproved, reason: "device " + topic + " is enrolled but not approved"}
	case StatusRevoked:
		f = failure{check: CheckRevoked, reason: "device " + topic + " was revoked: " + info.RevokeReason}
	}
	return answered(a.refuse(ctx, digest, topic, raw, false, nil, f))
}

// known answers a bundle accepted before, or in flight (once its first
// copy is answered); nil when the digest is new.
func (a *Archive) known(ctx context.Context, digest [32]byte, topic string) *Ticket {
	a.mu.Lock()
	first, ok := a.inflight[digest]
	a.mu.Unlock()
	if ok {
		return &Ticket{after: func(ctx context.Context) ([]byte, error) {
			if _, err := first.Wait(ctx); err != nil {
				return nil, err
			}
			if reply, err, done := a.duplicate(ctx, digest, topic); done {
				return reply, err
			}
			return nil, errPredecessor
		}}
	}
	if reply, err, done := a.duplicate(ctx, digest, topic); done {
		return answered(reply, err)
	}
	return nil
}

// duplicate answers a bundle accepted before (wasAccepted): its stored
// receipt, or a fresh one (repeatReceipt).
func (a *Archive) duplicate(ctx context.Context, digest [32]byte, topic string) ([]byte, error, bool) {
	acc, ok, err := a.wasAccepted(ctx, digest)
	if err != nil {
		return nil, err, true
	}
	if !ok {
		return nil, nil, false
	}
	if acc.device != topic {
		reply, err := a.refuse(ctx, digest, topic, nil, false, nil,
			failure{check: CheckTopic, reason: "bundle was accepted from " + acc.device + ", not " + topic})
		return reply, err, true
	}
	reply := acc.receiptBytes
	switch {
	case reply == nil && acc.pending != nil:
		reply, err = a.finishUnreceipted(ctx, digest, acc)
		if ue, ok := errors.AsType[*unreceiptedError](err); ok {
			t := a.held(digest, topic, ue.Error()) // its predecessor first
			return t.reply, t.err, true
		}
	case reply == nil:
		reply, err = a.storedReceipt(acc)
	}
	if err == nil {
		reply, err = a.repeatReceipt(ctx, acc, topic, reply)
	}
	if err == nil {
		a.stats.duplicates.Add(1)
	}
	return reply, err, true
}

// wasAccepted is the one answer to "was this bundle accepted, with which
// receipt": the chain-state store's record (state.Store.Bundle, written
// with the chain's advance, any replica's). Only a single archive falls
// back on its index, for the bundles it accepted before the store
// recorded them; replicas never do: a bundle in this replica's index
// whose chain advance failed was not answered, and must be admitted
// again (it keeps its log entry).
func (a *Archive) wasAccepted(ctx context.Context, digest [32]byte) (accepted, bool, error) {
	sa, err := a.chainStore.Bundle(ctx, digest)
	switch {
	case err == nil:
		acc := accepted{device: sa.Device, logIndex: sa.LogIndex, receiptBytes: sa.Receipt, pending: sa.Pending}
		if len(sa.Receipt) == 0 {
			acc.receiptBytes = nil
		}
		return acc, true, nil
	case !errors.Is(err, state.ErrNotFound):
		return accepted{}, false, fmt.Errorf("archive: %w", err)
	case a.shared:
		return accepted{}, false, nil
	}
	return a.acceptedOf(digest)
}

// statementSizes are the sizes of a statement's checkpoint and previous
// checkpoint (those that parse).
func statementSizes(p *bundle.SealPredicate) []uint64 {
	var out []uint64
	for _, c := range []string{p.Checkpoint, p.PreviousCheckpoint} {
		if cp, err := merkle.ParseCheckpoint([]byte(c)); c != "" && err == nil {
			out = append(out, cp.Size)
		}
	}
	return out
}

// signedByDevice reports whether the statement is signed by the device's
// approved key, so what it claims can be held against the device.
func signedByDevice(rep *verify.Report) bool {
	for _, name := range []string{verify.CheckSealEnvelope, verify.CheckSealSignature, verify.CheckKeysTrusted, verify.CheckKeysCertify} {
		if c, ok := rep.Get(name); !ok || !c.OK {
			return false
		}
	}
	return true
}

// topicChecks requires the bag's and the checkpoint's origin to be the
// topic's device (the signer is checked by Verify against the topic
// device's trust).
func topicChecks(b *bundle.Bundle, st *bundle.Statement, topic string) []failure {
	want := merkle.Origin(topic)
	var bad []string
	if o, ok := bagOrigin(b.Files[bundle.PathBagInfo]); ok && o != want {
		bad = append(bad, "bag-info origin "+o)
	}
	if st != nil {
		if cp, err := merkle.ParseCheckpoint([]byte(st.Predicate.Checkpoint)); err == nil && cp.Origin != want {
			bad = append(bad, "checkpoint origin "+cp.Origin)
		}
	}
	if len(bad) == 0 {
		return nil
	}
	return []failure{{check: CheckTopic, reason: strings.Join(bad, ", ") + " on the topic of " + topic}}
}

// bagOrigin reads the Origin line of bag-info.txt.
func bagOrigin(info []byte) (string, bool) {
	for line := range strings.SplitSeq(string(info), "\n") {
		if v, ok := strings.CutPrefix(line, "Origin: "); ok {
			return strings.TrimSpace(v), true
		}
	}
	return "", false
}

// sequenceChecks holds a device-signed statement against what the
// archive accepted from the device before: no fork (a checkpoint of an
// accepted size with another root, or a bundle extending an older
// checkpoint than the last accepted), no replay, no gap, NV counter and
// TPM clock forward. after is the device's last refused bundle, if any,
// which a gap names.
func sequenceChecks(lastSt *verify.State, root func(size uint64) ([32]byte, bool), p *bundle.SealPredicate, after *refusal) []failure {
	cp, err := merkle.ParseCheckpoint([]byte(p.Checkpoint))
	if err != nil {
		return nil // Verify names it
	}
	var prev merkle.Checkpoint
	if p.PreviousCheckpoint != "" {
		if prev, err = merkle.ParseCheckpoint([]byte(p.PreviousCheckpoint)); err != nil {
			return nil
		}
	}
	var out []failure
	fork := func(reason string) { out = append(out, failure{check: CheckFork, reason: reason, alarm: true}) }
	if lastSt == nil {
		if prev.Size != 0 {
			out = append(out, failure{check: CheckGap, reason: fmt.Sprintf("first bundle of the device starts at size %d, not 0", prev.Size)})
		}
		return out
	}
	for _, c := range []merkle.Checkpoint{cp, prev} {
		if r, ok := root(c.Size); ok && c.Size > 0 && r != c.Root {
			fork(fmt.Sprintf("checkpoint of size %d has root %s, the accepted one %s", c.Size, wire.FormatHash(c.Root), wire.FormatHash(r)))
		}
	}
	last, err := merkle.ParseCheckpoint([]byte(lastSt.Checkpoint))
	if err != nil {
		return append(out, failure{check: CheckFork, reason: "last accepted checkpoint unreadable: " + err.Error()})
	}
	switch {
	case len(out) > 0:
	case cp.Size <= last.Size:
		out = append(out, failure{check: CheckReplay, reason: fmt.Sprintf("checkpoint size %d is not beyond the last accepted %d", cp.Size, last.Size)})
	case prev.Size > last.Size:
		out = append(out, failure{check: CheckGap, reason: gapReason(prev.Size, last.Size, after)})
	case prev.Size < last.Size:
		fork(fmt.Sprintf("bundle extends size %d, older than the last accepted %d: history rewritten", prev.Size, last.Size))
	}
	if p.Counter <= lastSt.Counter {
		out = append(out, failure{check: CheckCounter, reason: fmt.Sprintf("NV counter %d not above the last accepted %d (rolled back)", p.Counter, lastSt.Counter)})
	}
	c, l := p.Clock, lastSt.Clock
	switch {
	case c.ResetCount < l.ResetCount || c.ResetCount == l.ResetCount && c.RestartCount < l.RestartCount:
		out = append(out, failure{check: CheckClock, reason: resetBackReason(c.ResetCount, c.RestartCount, l.ResetCount, l.RestartCount)})
	case c.ResetCount == l.ResetCount && c.RestartCount == l.RestartCount && c.Clock <= l.Clock:
		out = append(out, failure{check: CheckClock, reason: fmt.Sprintf("TPM clock %d not after the last accepted %d in the same boot", c.Clock, l.Clock)})
	}
	return out
}
