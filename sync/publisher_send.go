package sync

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/edgeseal/edgeseal/bundle"
)

// maxPendingFrames bounds frames handed to paho and not yet PUBACKed.
const maxPendingFrames = 32

// maxFreeFrames bounds the frame buffers a sender keeps for reuse.
const maxFreeFrames = 8

// sender publishes on one link.
type sender struct {
	p       *Publisher
	l       *link
	pending []sentFrame
	free    [][]byte // buffers of frames the broker acknowledged, for the next ones
}

// sentFrame is a frame handed to paho: its buffer is reused once the
// broker acknowledged it (paho keeps it until then, to send it again).
type sentFrame struct {
	tok mqtt.Token
	buf []byte
}

// pump resends after a receipt timeout (go-back-N: everything in flight,
// in order) and fills the window.
func (s *sender) pump(ctx context.Context) error {
	p := s.p
	now := p.now()
	p.mu.Lock()
	expired := false
	for _, f := range p.inflight {
		if !f.sent.IsZero() && now.Sub(f.sent) > p.opts.ResendAfter {
			expired = true
			break
		}
	}
	if expired {
		p.log.Info("sync: no receipt in time; sending again", "bundles", len(p.inflight), "after", p.opts.ResendAfter)
		p.stats.Resent += uint64(len(p.inflight))
		clear(p.inflight)
	}
	p.mu.Unlock()
	if err := s.reap(ctx, false); err != nil {
		return err
	}
	batch, err := p.scan(ctx)
	if err != nil {
		return fmt.Errorf("sync: read outbox: %w", err)
	}
	for _, e := range batch {
		if err := s.send(ctx, e); err != nil {
			return err
		}
	}
	return nil
}

// send publishes one bundle's frames, throttled, keeping at most
// maxPendingFrames unacknowledged.
func (s *sender) send(ctx context.Context, e entry) error {
	p := s.p
	digest := e.digest
	if !e.hashed {
		digest = sha256.Sum256(e.data)
	}
	c, ok := newChunker(e.id, digest, e.data, p.opts.MaxMessage)
	if !ok { // not ValidID: the scan holds these already
		p.hold(e.id)
		return nil
	}
	p.mu.Lock()
	if p.recent[digest] { // delivered while the scan ran
		p.mu.Unlock()
		return nil
	}
	p.sendOrder++
	f := &flight{digest: digest, order: p.sendOrder, epoch: p.stats.Delivered}
	p.inflight[e.id] = f
	p.stats.PeakInFlight = max(p.stats.PeakInFlight, len(p.inflight))
	p.mu.Unlock()
	for i := range c.count {
		fr := c.frame(s.buffer(c.maxFrame()), i)
		if err := p.bucket.wait(ctx, len(fr)); err != nil {
			return err
		}
		if cause := s.l.cause(); cause != nil {
			return &ConnectError{Broker: p.opts.Broker, Err: cause}
		}
		tok := s.l.c.Publish(p.topic, 1, false, fr)
		s.pending = append(s.pending, sentFrame{tok: tok, buf: fr})
		if i == c.count-1 && p.opts.OnSent != nil {
			go s.watchSent(ctx, tok, e.id)
		}
		p.mu.Lock()
		p.stats.FramesSent++
		p.stats.BytesSent += uint64(len(fr))
		p.mu.Unlock()
		if err := s.reap(ctx, len(s.pending) >= maxPendingFrames); err != nil {
			return err
		}
	}
	p.mu.Lock()
	f.sent = p.now()
	p.stats.BundlesSent++
	p.mu.Unlock()
	p.log.Debug("sync: bundle sent", "id", e.id, "digest", bundle.FormatHash(digest), "frames", c.count, "bytes", len(e.data))
	return nil
}

// watchSent calls OnSent once the bundle's last frame is acknowledged:
// frames are published in order on one connection, so all of them are.
func (s *sender) watchSent(ctx context.Context, tok mqtt.Token, id string) {
	select {
	case <-tok.Done():
		if tok.Error() == nil {
			s.p.opts.OnSent(id)
		}
	case <-ctx.Done():
	case <-s.l.lost:
	}
}

// reap drops acknowledged tokens from the front; with block it waits for
// the oldest one first.
func (s *sender) reap(ctx context.Context, block bool) error {
	for len(s.pending) > 0 {
		tok := s.pending[0].tok
		if block {
			if err := waitToken(ctx, tok, s.l, s.p.opts.ConnectTimeout); err != nil {
				return &PublishError{Topic: s.p.topic, Err: err}
			}
			block = false
		} else {
			select {
			case <-tok.Done():
			default:
				return nil
			}
		}
		if err := tok.Error(); err != nil {
			return &PublishError{Topic: s.p.topic, Err: err}
		}
		// Acknowledged: paho is done with the frame's bytes.
		if len(s.free) < maxFreeFrames {
			s.free = append(s.free, s.pending[0].buf)
		}
		s.pending[0] = sentFrame{}
		s.pending = s.pending[1:]
	}
	return nil
}

// buffer returns an acknowledged frame's buffer of at least n bytes
// capacity, or a new one.
func (s *sender) buffer(n int) []byte {
	for len(s.free) > 0 {
		b := s.free[len(s.free)-1]
		s.free[len(s.free)-1] = nil
		s.free = s.free[:len(s.free)-1]
		if cap(b) >= n {
			return b
		}
	}
	return make([]byte, 0, n)
}

// onMessage is paho's handler for the receipts subscription. It returns
// (and paho acknowledges the receipt) only after the entry is deleted, so a
// crash before that gets the receipt again from the broker.
func (p *Publisher) onMessage(_ mqtt.Client, m mqtt.Message) {
	if m.Topic() != p.receipts {
		p.log.Warn("sync: message on an unexpected topic ignored", "topic", m.Topic())
		return
	}
	p.mu.Lock()
	ctx := p.ctx
	p.mu.Unlock()
	if err := p.handleReply(ctx, m.Payload()); err != nil {
		var re *ReplyError
		if errors.As(err, &re) {
			p.log.Warn("sync: reply ignored", "err", err)
		} else {
			p.log.Error("sync: reply not processed; the bundle will be sent again", "err", err)
		}
		p.setErr(err)
	}
}

// handleReply verifies a receipt or rejection and acts on it.
func (p *Publisher) handleReply(ctx context.Context, payload []byte) error {
	env, err := parseReply(payload)
	if err != nil {
		return p.bad(err)
	}
	switch env.PayloadType {
	case bundle.ReceiptPayloadType:
		r, err := verifyReceipt(payload, p.opts.ArchiveKeyID, p.opts.ArchiveKey)
		if err != nil {
			return p.bad(err)
		}
		id, digest, err := p.match(ctx, "receipt", r.Device, r.BundleDigest)
		if err != nil || id == "" {
			return err
		}
		if p.opts.OnReceipt != nil {
			if err := p.opts.OnReceipt(ctx, id, payload); err != nil {
				return fmt.Errorf("sync: receipt callback for outbox entry %q: %w", id, err)
			}
		}
		if err := p.opts.Outbox.DeleteOutbox(ctx, id); err != nil {
			return fmt.Errorf("sync: delete delivered outbox entry %q: %w", id, err)
		}
		p.mu.Lock()
		lost := p.goBack(id)
		delete(p.inflight, id)
		p.remember(digest)
		p.stats.Delivered++
		p.stats.OutboxDepth = max(0, p.stats.OutboxDepth-1)
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
		p.log.Debug("sync: delivered", "id", id, "digest", r.BundleDigest, "logIndex", r.LogIndex)
		p.Wake()
		return nil
	case RejectionPayloadType:
		rej, err := VerifyRejection(payload, p.opts.ArchiveKeyID, p.opts.ArchiveKey)
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
		if f := p.inflight[id]; slices.Contains(rej.Checks, GapCheck) && (f == nil || p.stats.Delivered > f.epoch) {
			stale = true
			p.stats.Requeued++
		} else {
			p.held[id] = true
			p.heldAt = p.now()
			if slices.Contains(rej.Checks, GapCheck) {
				p.gapHeld[id] = p.now()
			}
		}
		delete(p.inflight, id)
		p.stats.Rejected++
		p.mu.Unlock()
		p.logGoBack(id, lost)
		if stale {
			p.log.Warn("sync: the archive refused a bundle sent before an earlier one was delivered; sending it again",
				"id", id, "digest", rej.BundleDigest, "reason", rej.Reason)
		} else {
			p.log.Error("sync: ARCHIVE REJECTED BUNDLE; kept in the outbox, sent again only after sync.retry_held",
				"id", id, "digest", rej.BundleDigest, "reason", rej.Reason, "checks", rej.Checks)
		}
		if p.opts.OnRejection != nil {
			p.opts.OnRejection(ctx, id, rej, payload)
		}
		p.Wake()
		return nil
	default:
		return p.bad(&ReplyError{Kind: "reply", Reason: "payload type " + env.PayloadType})
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
	digest, err := bundle.ParseHash(digestStr)
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
