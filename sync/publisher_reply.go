package sync

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/edgeseal/edgeseal/bundle/archivesig"
	"github.com/edgeseal/edgeseal/bundle/dsse"
	"github.com/edgeseal/edgeseal/bundle/wire"
)

// maxReplyBatch bounds the replies handled together (the broker's
// in-flight limit for the receipts subscription bounds it too).
const maxReplyBatch = 64

// replyLinger bounds how long a reply waits for the replies to other
// bundles in flight, so that they are journaled with one commit and their
// entries deleted with one directory sync (replyBatchReady): each of
// those costs about as much CPU for one receipt as for ten, while a
// drain's receipts come one at a time, as the archive finishes each bundle.
const replyLinger = 100 * time.Millisecond

// onMessage is paho's handler for the receipts subscription (manual
// acknowledgement): it queues the reply for replyLoop and returns at once,
// so paho goes on reading while earlier replies are journaled. The broker
// gets the PUBACK of a reply only after it was handled (its entry deleted),
// so a crash before that gets the reply again from the broker.
func (p *Publisher) onMessage(_ mqtt.Client, m mqtt.Message) {
	if m.Topic() != p.receipts {
		p.log.Warn("sync: message on an unexpected topic ignored", "topic", m.Topic())
		m.Ack()
		return
	}
	// Never blocks: paho's router must not wait for replyLoop, whose
	// acknowledgements go through paho's own goroutines.
	p.rmu.Lock()
	p.rqueue = append(p.rqueue, m)
	p.rmu.Unlock()
	select {
	case p.rwake <- struct{}{}:
	default:
	}
}

// replyLoop handles the queued replies until ctx is done: all those that
// arrived together, or within replyLinger of the first while other
// bundles are in flight (linger), at once (one journal commit and one
// outbox sync for their receipts), then acknowledges them (also those that failed: the
// entry stays and is sent again). Replies still queued at the end, or
// being handled when ctx ended, are not acknowledged; the broker sends
// them again.
func (p *Publisher) replyLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-p.rwake:
		}
		if !p.linger(ctx) {
			return
		}
		for {
			p.rmu.Lock()
			n := min(len(p.rqueue), maxReplyBatch)
			ms := slices.Clone(p.rqueue[:n])
			clear(p.rqueue[:n])
			p.rqueue = p.rqueue[n:]
			p.rmu.Unlock()
			if n == 0 || ctx.Err() != nil {
				break
			}
			payloads := make([][]byte, n)
			for i, m := range ms {
				payloads[i] = m.Payload()
			}
			errs := p.handleReplies(ctx, payloads)
			if ctx.Err() != nil {
				return // stopped while handling: not acknowledged, the broker sends them again
			}
			for _, err := range errs {
				if err == nil {
					continue
				}
				if _, ok := errors.AsType[*ReplyError](err); ok {
					p.log.Warn("sync: reply ignored", "err", err)
				} else {
					p.log.Error("sync: reply not processed; the bundle will be sent again", "err", err)
				}
				p.setErr(err)
			}
			for _, m := range ms {
				m.Ack()
			}
		}
	}
}

// linger waits, at most replyLinger, until the queued replies make a batch
// (replyBatchReady); false when ctx ended.
func (p *Publisher) linger(ctx context.Context) bool {
	if p.replyBatchReady() {
		return true
	}
	t := time.NewTimer(replyLinger)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
			return true
		case <-p.rwake:
			if p.replyBatchReady() {
				return true
			}
		}
	}
}

// replyBatchReady reports whether the queued replies are handled now: none
// are queued, or as many as the bundles in flight (no other reply is
// expected: a lone bundle's receipt waits for nothing), or half the
// window (the other half keeps the archive busy while they wait).
func (p *Publisher) replyBatchReady() bool {
	p.rmu.Lock()
	queued := len(p.rqueue)
	p.rmu.Unlock()
	p.mu.Lock()
	expected, window := len(p.inflight), p.window
	p.mu.Unlock()
	return queued == 0 || queued >= expected || queued >= min(max(window/2, 1), maxReplyBatch)
}

// handleReply verifies a receipt or rejection and acts on it.
func (p *Publisher) handleReply(ctx context.Context, payload []byte) error {
	return p.handleReplies(ctx, [][]byte{payload})[0]
}

// receiptItem is a verified receipt matched to its outbox entry.
type receiptItem struct {
	at      int // position in the replies
	id      string
	digest  [32]byte
	payload []byte
	env     *dsse.Envelope // parsed from payload
	r       *archivesig.Receipt
}

// handleReplies verifies replies and acts on them, in order; the result
// is aligned with payloads. Consecutive receipts are journaled together
// (OnReceipts, or OnReceipt for each) and their entries deleted together
// (OutboxBatchDeleter, or DeleteOutbox for each).
func (p *Publisher) handleReplies(ctx context.Context, payloads [][]byte) []error {
	errs := make([]error, len(payloads))
	var run []receiptItem
	flush := func() {
		if len(run) > 0 {
			p.deliver(ctx, run, errs)
			run = run[:0]
		}
	}
	for i, payload := range payloads {
		env, err := parseReply(payload)
		if err != nil {
			errs[i] = p.bad(err)
			continue
		}
		if env.PayloadType != archivesig.ReceiptPayloadType {
			flush()
			errs[i] = p.handleOther(ctx, env.PayloadType, payload)
			continue
		}
		// The envelope is parsed once, here: the receipt is read from it
		// and handed on parsed (OnParsedReceipts).
		var r *archivesig.Receipt
		if p.opts.ArchiveKeys != nil {
			r, err = verifyReceiptRingEnvelope(ctx, env, p.opts.ArchiveKeys)
		} else {
			r, err = verifyReceiptEnvelope(env, p.opts.ArchiveKeyID, p.opts.ArchiveKey)
		}
		if err != nil {
			errs[i] = p.bad(err)
			continue
		}
		id, digest, err := p.match(ctx, "receipt", r.Device, r.BundleDigest)
		if err != nil || id == "" {
			errs[i] = err
			continue
		}
		if slices.ContainsFunc(run, func(it receiptItem) bool { return it.id == id }) {
			continue // the same receipt twice in a row
		}
		run = append(run, receiptItem{at: i, id: id, digest: digest, payload: payload, env: env, r: r})
	}
	flush()
	return errs
}

// deliver journals a run of receipts, deletes their entries and updates
// the window; a failure leaves the entries (sent again later) and is the
// error of each receipt it concerns.
func (p *Publisher) deliver(ctx context.Context, run []receiptItem, errs []error) {
	fail := func(items []receiptItem, err error) {
		for _, it := range items {
			errs[it.at] = err
		}
	}
	run = p.journal(ctx, run, errs)
	if len(run) == 0 {
		return
	}
	ids := make([]string, len(run))
	for i, it := range run {
		ids[i] = it.id
	}
	if d, ok := p.opts.Outbox.(OutboxBatchDeleter); ok {
		if err := d.DeleteOutboxes(ctx, ids); err != nil {
			fail(run, fmt.Errorf("sync: delete delivered outbox entries %q: %w", ids, err))
			return
		}
	} else {
		for i, it := range run {
			if err := p.opts.Outbox.DeleteOutbox(ctx, it.id); err != nil {
				fail(run[i:], fmt.Errorf("sync: delete delivered outbox entry %q: %w", it.id, err))
				run = run[:i]
				break
			}
		}
	}
	for _, it := range run {
		p.delivered(it)
	}
	p.kick()
}

// journal hands a run of receipts to OnReceipts (or OnReceipt) and
// returns those journaled; the error of each other one is set in errs.
// When OnReceipts refuses the run, each receipt is handed over again
// alone, in order, and those refused once more after others were
// journaled: one receipt refused (the callback refuses the whole run for
// it) must not hold back those that came with it. Otherwise a refused
// receipt would refuse its companions each time their bundles are sent
// again and answered together, and the receipts after them, which may
// need theirs journaled first, would wait forever too.
func (p *Publisher) journal(ctx context.Context, run []receiptItem, errs []error) []receiptItem {
	switch {
	case p.opts.OnParsedReceipts != nil || p.opts.OnReceipts != nil:
		ids := make([]string, len(run))
		receipts := make([][]byte, len(run))
		parsed := make([]archivesig.ParsedReceipt, len(run))
		for i, it := range run {
			ids[i], receipts[i] = it.id, it.payload
			parsed[i] = archivesig.ParsedReceipt{Raw: it.payload, Envelope: it.env, Receipt: it.r}
		}
		call := func(ids []string, receipts [][]byte, parsed []archivesig.ParsedReceipt) error {
			if p.opts.OnParsedReceipts != nil {
				return p.opts.OnParsedReceipts(ctx, ids, parsed)
			}
			return p.opts.OnReceipts(ctx, ids, receipts)
		}
		err := call(ids, receipts, parsed)
		if err == nil {
			return run
		}
		if len(run) == 1 || ctx.Err() != nil {
			err = fmt.Errorf("sync: receipt callback for outbox entries %q: %w", ids, err)
			for _, it := range run {
				errs[it.at] = err
			}
			return nil
		}
		p.log.Debug("sync: receipts refused together; journaling them one at a time", "ids", ids, "err", err)
		// Passes in arrival order until one journals nothing more: a
		// receipt may need one that arrived after it journaled first
		// (replies the broker delivers again after a reconnect come
		// behind newer ones).
		ok := run[:0:0]
		left := make([]int, len(run))
		for i := range left {
			left[i] = i
		}
		for progress := true; progress && len(left) > 0; {
			progress = false
			var again []int
			for _, i := range left {
				it := run[i]
				if err := call(ids[i:i+1], receipts[i:i+1], parsed[i:i+1]); err != nil {
					errs[it.at] = fmt.Errorf("sync: receipt callback for outbox entry %q: %w", it.id, err)
					again = append(again, i)
					continue
				}
				errs[it.at] = nil
				ok = append(ok, it)
				progress = true
			}
			left = again
		}
		return ok
	case p.opts.OnReceipt != nil:
		// Each receipt alone: one refused does not stop the others.
		ok := run[:0:0]
		for _, it := range run {
			if err := p.opts.OnReceipt(ctx, it.id, it.payload); err != nil {
				errs[it.at] = fmt.Errorf("sync: receipt callback for outbox entry %q: %w", it.id, err)
				continue
			}
			ok = append(ok, it)
		}
		return ok
	}
	return run
}

// delivered takes a receipted entry, whose entry is deleted, out of the
// window.
func (p *Publisher) delivered(it receiptItem) {
	id := it.id
	p.mu.Lock()
	lost := p.goBack(id)
	delete(p.inflight, id)
	p.unlist(id)
	p.remember(it.digest)
	delete(p.heldBack, id)
	p.stats.Delivered++
	p.stats.OutboxDepth = max(0, p.stats.OutboxDepth-1)
	p.window = min(p.window+1, p.opts.Window)
	// Later entries rejected before this one was delivered may have
	// been refused for the gap it left: give them one more try.
	var again []string
	for hid, rejected := range p.held {
		if rejected && hid > id {
			delete(p.held, hid)
			again = append(again, hid)
		}
	}
	p.stats.Requeued += uint64(len(again))
	p.heldWait = p.opts.RetryHeld
	p.mu.Unlock()
	if len(again) > 0 {
		p.log.Warn("sync: an earlier bundle was delivered after later ones were rejected; sending those again",
			"delivered", id, "requeued", again)
	}
	p.logGoBack(id, lost)
	p.log.Debug("sync: delivered", "id", id, "digest", it.r.BundleDigest, "logIndex", it.r.LogIndex)
}

// handleOther acts on a reply that is not a receipt: a rejection, or
// something this publisher does not know.
func (p *Publisher) handleOther(ctx context.Context, payloadType string, payload []byte) error {
	switch payloadType {
	case RejectionPayloadType:
		var rej *Rejection
		var err error
		if p.opts.ArchiveKeys != nil {
			rej, err = VerifyRejectionRing(ctx, payload, p.opts.ArchiveKeys)
		} else {
			rej, err = VerifyRejection(payload, p.opts.ArchiveKeyID, p.opts.ArchiveKey)
		}
		if err != nil {
			return p.bad(err)
		}
		id, _, err := p.match(ctx, "rejection", rej.Device, rej.BundleDigest)
		if err != nil || id == "" {
			return err
		}
		p.mu.Lock()
		lost := p.goBack(id)
		// An entry delivered since this one was sent may be the one whose
		// absence the archive refused (GapCheck): the rejection is stale, and
		// the entry is sent once more instead of held. So is a gap
		// rejection of an entry no longer in flight: a go-back already
		// put it back for the next pump (holding it could leave nothing
		// to requeue it but sync.retry_held). A bundle refused for itself
		// is refused again and then held, since the entries after it are
		// refused too and nothing more is delivered.
		stale := false
		var heldWait time.Duration // > 0: answered held, sent again after this
		if f := p.inflight[id]; resendSoon(rej.Checks) && (f == nil || p.stats.Delivered > f.epoch) {
			stale = true
			p.stats.Requeued++
		} else {
			p.held[id] = true
			p.heldAt = p.now()
			if resendSoon(rej.Checks) {
				p.gapHeld[id] = p.now()
			}
			if slices.Contains(rej.Checks, HeldCheck) && !slices.Contains(rej.Checks, GapCheck) {
				heldWait = p.heldWaitFor(id)
				p.heldShrink(f)
			} else {
				delete(p.heldBack, id)
			}
		}
		delete(p.inflight, id)
		p.stats.Rejected++
		p.mu.Unlock()
		p.logGoBack(id, lost)
		switch {
		case stale:
			p.log.Warn("sync: the archive refused a bundle sent before an earlier one was delivered; sending it again",
				"id", id, "digest", rej.BundleDigest, "reason", rej.Reason)
		case heldWait > 0:
			// Not a refusal: the device's previous bundle was still being
			// committed (another archive replica). Sent again soon.
			p.log.Debug("sync: bundle held by the archive; sending it again soon", "id", id, "after", heldWait)
			time.AfterFunc(heldWait, p.kick)
		default:
			// With OnRejection the caller reports the refusal (once, not
			// at every retry); without it the publisher does.
			level := slog.LevelError
			if p.opts.OnRejection != nil {
				level = slog.LevelDebug
			}
			p.log.Log(ctx, level, "sync: ARCHIVE REJECTED BUNDLE; kept in the outbox, sent again only after sync.retry_held",
				"id", id, "digest", rej.BundleDigest, "reason", rej.Reason, "checks", rej.Checks)
		}
		if p.opts.OnRejection != nil {
			p.opts.OnRejection(ctx, id, rej, payload)
		}
		p.kick()
		return nil
	default:
		return p.bad(&ReplyError{Kind: "reply", Reason: "payload type " + payloadType})
	}
}

// goBack is called with the entry the archive just answered: the entries
// sent before it on this connection and still unanswered lost their
// bundle or their reply on the way (an archive answers a device's bundles
// in the order they reach it, and the broker keeps that order), so they
// leave the window now and the next pump sends them again, instead of
// waiting out ResendAfter. A bundle sent twice is stored once and gets the
// same receipt again. It returns the ids sent again; p.mu is held.
func (p *Publisher) goBack(answered string) []string {
	f, ok := p.inflight[answered]
	if !ok || f.sent.IsZero() {
		return nil
	}
	var lost []string
	for id, g := range p.inflight {
		if g.order < f.order && !g.sent.IsZero() {
			delete(p.inflight, id)
			lost = append(lost, id)
		}
	}
	p.stats.Resent += uint64(len(lost))
	return lost
}

func (p *Publisher) logGoBack(answered string, lost []string) {
	if len(lost) > 0 {
		p.log.Info("sync: a later bundle was answered first; sending the earlier ones again", "answered", answered, "resend", lost)
	}
}

func (p *Publisher) bad(err error) error {
	p.mu.Lock()
	p.stats.BadReplies++
	p.mu.Unlock()
	return err
}

// match finds the outbox entry a reply names. A digest delivered lately
// (a duplicate receipt) gives id "" and no error.
func (p *Publisher) match(ctx context.Context, kind, device, digestStr string) (string, [32]byte, error) {
	digest, err := wire.ParseHash(digestStr)
	if err != nil {
		return "", digest, p.bad(&ReplyError{Kind: kind, Reason: "digest", Err: err})
	}
	if device != p.device {
		return "", digest, p.bad(&ReplyError{Kind: kind, Reason: "for device " + device + ", not " + p.device})
	}
	p.mu.Lock()
	if p.recent[digest] { // a duplicate reply: the entry is gone already
		for id, f := range p.inflight {
			if f.digest == digest {
				delete(p.inflight, id)
			}
		}
		p.mu.Unlock()
		return "", digest, nil
	}
	for id, f := range p.inflight {
		if f.digest == digest {
			p.mu.Unlock()
			return id, digest, nil
		}
	}
	p.mu.Unlock()
	// Not in flight: a reply to an earlier run; look through the outbox.
	var found string
	err = p.opts.Outbox.Outbox(ctx, func(id string, data []byte) error {
		if sha256.Sum256(data) == digest {
			found = id
			return errStopScan
		}
		return nil
	})
	if err != nil && !errors.Is(err, errStopScan) {
		return "", digest, fmt.Errorf("sync: read outbox: %w", err)
	}
	if found == "" {
		return "", digest, p.bad(&ReplyError{Kind: kind, Reason: "no outbox entry has digest " + digestStr})
	}
	return found, digest, nil
}

// remember keeps the last delivered digests so duplicate receipts are
// recognised without an outbox scan; p.mu is held.
func (p *Publisher) remember(d [32]byte) {
	const keep = 1024
	p.recent[d] = true
	p.recentLog = append(p.recentLog, d)
	if len(p.recentLog) > keep {
		delete(p.recent, p.recentLog[0])
		p.recentLog = p.recentLog[1:]
	}
}
