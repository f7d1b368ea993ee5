package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// Pipelined group commits.
//
// The sequencer hands a group to Badger (Txn.CommitWith) and goes on
// taking requests while Badger writes and syncs it: they are built into
// the next group as they come (records built, hashed, their stored
// hashes, payloads and keys laid out), which is sent the moment the
// commit before it completes. At most maxInFlight groups are in Badger
// at once; one, because a second one in flight only split the callers
// into two cohorts of half the size (64 writers: 16 records a commit
// instead of 32) for no less CPU. Badger's single writer applies groups
// in the order they were sent, and the sequencer answers them strictly
// in that order (complete): a group's callers, and the new size readers
// see, wait until its own commit and every earlier one are synced. The
// first commit that fails fails the journal (abandoned, as before) and
// every group after it with it, whatever Badger later says of them;
// nothing of them was acknowledged.
//
// With nothing in flight the open group lingers a moment (linger) while
// it holds fewer requests than the last commit answered: those callers
// are usually on their way back, and a commit's syncs cost about the same
// for one record or a hundred (64 writers: 60 records a commit instead of
// 32, a third less CPU per append).
//
// Two Badger details shape this. A new transaction's read timestamp
// waits until every commit in flight is applied (Badger's oracle), so a
// write transaction opened while a group is in flight would stall the
// pipeline: the sequencer opens spareTxns write transactions at once
// whenever nothing is in flight and takes one per group. A write-only
// transaction with conflict detection off (the journal's options) never
// uses its read timestamp; its entries are versioned at commit. The
// sequencer's own reads (committed idempotency keys, stored payloads)
// go to one read transaction shared by every group (view), opened
// likewise when nothing is in flight, plus an overlay of the keys and
// digests built since it was opened; it is reopened whenever the
// pipeline is empty, after a purge, and every maxViewGroups groups.

const (
	maxInFlight   = 1
	spareTxns     = 32
	maxViewGroups = 256
	lingerMax     = 500 * time.Microsecond
)

// inflight is a group handed to Badger and not yet answered.
type inflight struct {
	g     *group
	done  chan error // the commit's result (buffered: the callback never blocks)
	syncs int64      // Badger's logged sync failures when it was sent
}

// view is the sequencer's read state: a read transaction and what was
// built after it was opened.
type view struct {
	txn      *badger.Txn
	purges   uint64            // j.purges when txn was opened
	groups   int               // groups built since
	keys     map[string]uint64 // idempotency keys built since -> seq
	digests  map[[32]byte]bool // payload digests built since
	present  map[[32]byte]bool // digests found stored by txn (cache)
	prefixes map[[32]byte]bool // payload prefixes built since or found stored
}

// refreshView opens a new read transaction once nothing is in flight
// (waiting for the pipeline to drain when it must: after a purge, or when
// the view has served maxViewGroups groups).
func (j *Journal) refreshView() {
	v := j.view
	if v != nil && len(j.flight) > 0 && v.purges == j.purges.Load() && v.groups < maxViewGroups {
		return
	}
	j.drainFlight()
	if v != nil && v.txn != nil {
		v.txn.Discard()
	}
	j.view = &view{
		purges:   j.purges.Load(),
		txn:      j.db.NewTransaction(false),
		keys:     map[string]uint64{},
		digests:  map[[32]byte]bool{},
		present:  map[[32]byte]bool{},
		prefixes: map[[32]byte]bool{},
	}
}

// closeView discards the sequencer's transactions (on exit).
func (j *Journal) closeView() {
	if j.view != nil && j.view.txn != nil {
		j.view.txn.Discard()
	}
	j.view = nil
	for _, t := range j.spares {
		t.Discard()
	}
	j.spares = nil
}

// keySeq returns the seq journaled under an idempotency key (stored key
// sk): built since the view was opened, or committed before. ErrNotFound
// when neither. recent reports the first case (the original may not be
// synced yet).
func (j *Journal) keySeq(key, sk []byte) (seq uint64, recent bool, err error) {
	if s, ok := j.view.keys[string(key)]; ok {
		return s, true, nil
	}
	if j.keyFilter.absent(sk) {
		return 0, false, ErrNotFound
	}
	j.keyReads.Add(1)
	v, err := j.c.get(j.view.txn, sk)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return 0, false, ErrNotFound
	}
	if err != nil {
		return 0, false, err
	}
	if len(v) != 8 {
		return 0, false, &CorruptError{What: fmt.Sprintf("idempotency key %q: value is %d bytes, want 8", key, len(v))}
	}
	return binary.BigEndian.Uint64(v), false, nil
}

// payloadStored reports whether payload p is stored in the shape it
// would be written in (whole, or split from its prefix), or built since
// the view was opened. pk is p's whole-shape key, the key the payload
// filter holds for a payload stored in either shape: the filter answers
// "absent" without a read for nearly every new payload (digestfilter.go).
// On "maybe" only the key of the shape p is written in is read (at most
// one read a payload): the same bytes stored in the other shape are stored
// again, which readers and PurgePayload allow (payloadsplit.go).
func (j *Journal) payloadStored(p Payload, pk []byte) bool {
	v := j.view
	if v.digests[p.Digest] || v.present[p.Digest] {
		return true
	}
	if j.filter.absent(pk) {
		return false
	}
	j.payloadReads.Add(1)
	if _, err := v.txn.Get(payloadKey(p, pk)); err == nil {
		v.present[p.Digest] = true
		return true
	}
	return false
}

// writeTxn returns a write transaction for the next group without
// waiting for the groups in flight (see the top of this file).
func (j *Journal) writeTxn() *badger.Txn {
	if len(j.spares) == 0 {
		j.drainFlight()
		for range spareTxns {
			j.spares = append(j.spares, j.db.NewTransaction(true))
		}
	}
	n := len(j.spares) - 1
	t := j.spares[n]
	j.spares[n] = nil // a used transaction holds its group's sealed values
	j.spares = j.spares[:n]
	return t
}

// run is the sequencer goroutine: it builds groups from the queue and
// sends them to Badger (pump), and answers each group once its commit is
// synced (complete).
func (j *Journal) run() {
	defer close(j.done)
	defer j.closeView()
	for {
		var oldest chan error
		if len(j.flight) > 0 {
			oldest = j.flight[0].done
		}
		select {
		case <-j.quit:
			j.drainFlight()
			return
		case err := <-oldest:
			j.complete(err)
			continue
		case <-j.wake:
		}
		j.pump()
	}
}

// pump takes requests from the queue and builds them into groups until
// the queue is empty and every group is sent. A full group is sent as
// soon as fewer than maxInFlight are in flight; the open one when none
// is: while a commit syncs, the next group keeps growing with the
// requests that arrive (each built, hashed and sealed as it comes).
func (j *Journal) pump() {
	var b *builder
	for {
		if b == nil || b.empty() {
			j.refreshView()
			b = j.newBuilder()
		}
		batch := j.take()
		if f := j.failed.Load(); f != nil {
			for _, r := range batch {
				r.finish(f.err)
			}
			b.finish(f.err)
			return
		}
		for _, r := range batch {
			j.add(b, r)
		}
		for len(b.full) > 0 && len(j.flight) < maxInFlight {
			g := b.full[0]
			b.full = b.full[1:]
			if !j.sendOrFail(b, g) {
				return
			}
		}
		switch {
		case len(b.full) > 0:
			j.completeOldest()
		case len(b.cur.reqs) == 0:
			if len(batch) == 0 {
				return
			}
		case len(j.flight) == 0 && j.linger(len(b.cur.reqs)):
			// Wait a moment for the callers of the last commit.
		case len(j.flight) == 0:
			g := b.cur
			b.cur = &group{}
			j.lingerUntil = time.Time{}
			if !j.sendOrFail(b, g) {
				return
			}
		default:
			// A commit is syncing: let the open group grow until it is
			// done, or send what is built and stop on Close.
			select {
			case err := <-j.flight[0].done:
				j.complete(err)
			case <-j.wake:
			case <-j.quit:
				gs := append(b.full, b.cur)
				b.full, b.cur = nil, &group{}
				for i, g := range gs {
					if len(g.reqs) == 0 {
						continue
					}
					b.full = gs[i+1:] // failed with g if it fails
					if !j.sendOrFail(b, g) {
						return
					}
				}
				return
			}
		}
	}
}

// linger decides whether the open group, of n requests, waits before
// it is sent, and waits: a commit's syncs cost about the same for one
// record or a hundred, and the callers the last commit answered are
// usually on their way back with their next append. So while the open
// group holds fewer requests than the last commit answered, it waits for
// more, at most lingerMax in all. It never waits for a lone caller (the
// last commit answered one request) and never while a commit is in
// flight (the group grows anyway then).
func (j *Journal) linger(n int) bool {
	if n >= j.lastAnswered {
		return false
	}
	now := time.Now()
	if j.lingerUntil.IsZero() {
		j.lingerUntil = now.Add(lingerMax)
	}
	wait := j.lingerUntil.Sub(now)
	if wait <= 0 {
		return false
	}
	if j.lingerTimer == nil {
		j.lingerTimer = time.NewTimer(wait)
	} else {
		j.lingerTimer.Reset(wait)
	}
	select {
	case <-j.wake:
	case <-j.lingerTimer.C:
	case <-j.quit:
		j.lingerUntil = now // send at once
	}
	j.lingerTimer.Stop()
	return true
}

// finish answers every request built into b with err.
func (b *builder) finish(err error) {
	for _, g := range append(b.full, b.cur) {
		g.finish(err)
	}
	b.full, b.cur = nil, &group{}
}

// sendOrFail sends g; when it cannot reach Badger it answers the groups
// in flight, fails the journal, g and the rest of b, and returns false.
func (j *Journal) sendOrFail(b *builder, g *group) bool {
	err := j.send(g)
	if err == nil {
		return true
	}
	j.drainFlight()
	j.fail(&failure{err: fmt.Errorf("store: append: commit: %w: %w", err, ErrFailed)})
	f := j.failed.Load()
	j.log.Error("journal commit failed; refusing writes until reopened", "err", err, "size", j.Size(), "abandoned", f.abandon)
	g.finish(f.err)
	b.finish(f.err)
	return false
}

// send hands g to Badger and returns without waiting for its sync; the
// group is answered by complete. An error means g never reached Badger
// (the groups before it may still be in flight).
func (j *Journal) send(g *group) error {
	for len(j.flight) >= maxInFlight {
		j.completeOldest()
	}
	if f := j.failed.Load(); f != nil {
		return f.err
	}
	txn := j.writeTxn()
	if err := j.fill(txn, g); err != nil {
		txn.Discard()
		return err
	}
	// The transaction's entries hold what Badger writes (sealed copies
	// when encrypted): the group's list of writes, and with a key the
	// clear values in it (built records, stored hashes), are garbage from
	// here on, not held while the group is in flight.
	g.kvs = nil
	if j.commitHook != nil {
		if err := j.commitHook(); err != nil {
			txn.Discard()
			return err
		}
	}
	// The one durable write of the journal: Badger appends the
	// transaction to its write-ahead log (and large values to its value
	// log) and msyncs them before it calls back. An error there, or a sync
	// error Badger only logged, means the transaction may be in Badger's
	// memory and only partly (or not) on disk: the commit fails, nothing
	// of it is acknowledged, and the journal is abandoned (see failure)
	// rather than synced again.
	fl := &inflight{g: g, done: make(chan error, 1), syncs: j.blog.syncErrs.Load()}
	txn.CommitWith(func(err error) { fl.done <- err })
	j.flight = append(j.flight, fl)
	if j.view != nil {
		j.view.groups++
	}
	return nil
}

// fill sets g's entries and its metadata in txn. With an encryption key
// every value is sealed into one buffer (dropped with the group once it
// is answered); without one the entries take the group's values as they
// are: they are the sequencer's own (built records, stored hashes and
// keys) or the callers' payloads, which no one writes to before the
// commit is answered, and Badger copies what it keeps.
func (j *Journal) fill(txn *badger.Txn, g *group) error {
	end := g.end.encode()
	extra := j.c.overhead()
	var buf []byte
	if extra > 0 {
		n := len(end) + extra
		for _, k := range g.kvs {
			n += len(k.val) + extra
		}
		buf = make([]byte, 0, n)
	}
	ents := make([]badger.Entry, len(g.kvs)+1)
	set := func(e *badger.Entry, key, val []byte) error {
		if extra > 0 {
			start := len(buf)
			buf = j.c.sealAppend(buf, key, val)
			val = buf[start:len(buf):len(buf)]
		}
		e.Key, e.Value = key, val
		return txn.SetEntry(e)
	}
	for i, k := range g.kvs {
		if err := set(&ents[i], k.key, k.val); err != nil {
			return err
		}
	}
	return set(&ents[len(g.kvs)], metaKey, end)
}

// completeOldest waits for the oldest group in flight and answers it.
func (j *Journal) completeOldest() { j.complete(<-j.flight[0].done) }

// drainFlight answers every group in flight, in order.
func (j *Journal) drainFlight() {
	for len(j.flight) > 0 {
		j.completeOldest()
	}
}

// complete answers the oldest group in flight with its commit's result:
// publishes its end state and answers its callers, or fails the journal
// and every group in flight.
func (j *Journal) complete(err error) {
	fl := j.flight[0]
	j.flight = j.flight[1:]
	if err == nil && j.blog.syncErrs.Load() != fl.syncs {
		err = errors.New("badger reported a sync failure during the commit")
	}
	if err == nil {
		if f := j.failed.Load(); f != nil {
			// An earlier group failed: this one is not acknowledged either.
			fl.g.finish(f.err)
			return
		}
		end := fl.g.end
		j.state.Store(&end)
		j.lastAnswered = len(fl.g.reqs)
		for _, r := range fl.g.reqs {
			for i := range r.res {
				if r.errs[i] == nil {
					r.res[i].Size = end.Size
				}
			}
			close(r.done)
		}
		j.noteWritten(fl.g.raw)
		j.commits.Add(1)
		j.committed.Add(fl.g.raw)
		return
	}
	f := &failure{err: fmt.Errorf("store: append: commit: %w: %w", err, ErrFailed), abandon: true}
	j.fail(f)
	j.log.Error("journal commit failed; refusing writes until reopened", "err", err, "size", j.Size(), "abandoned", true)
	fl.g.finish(j.failed.Load().err)
	for _, later := range j.flight {
		later.g.finish(j.failed.Load().err)
	}
	j.flight = nil
}

// finish answers every request of g with err.
func (g *group) finish(err error) {
	for _, r := range g.reqs {
		r.finish(err)
	}
}
