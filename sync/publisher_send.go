package sync

import (
	"context"
	"crypto/sha256"
	"fmt"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/edgeseal/edgeseal/bundle/wire"
)

// maxPendingFrames bounds frames handed to paho and not yet PUBACKed.
const maxPendingFrames = 32

// maxFreeFrames bounds the frame buffers a sender keeps for reuse: as
// many as may be pending, so that a drain cuts every frame into a buffer
// it had (a fresh one costs its clearing and page faults, as much CPU as
// the copy into it). The sender drops them once nothing is left to send
// or answer (pump).
const maxFreeFrames = maxPendingFrames

// maxReadBuffer bounds the bundle read buffer a sender keeps for reuse.
const maxReadBuffer = 16 << 20

// sender publishes on one link.
type sender struct {
	p       *Publisher
	l       *link
	pending []sentFrame
	free    [][]byte // buffers of frames the broker acknowledged, for the next ones
	rbuf    []byte   // the bundle being sent is read into it (OutboxDigester)
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
	if len(batch) == 0 && len(s.pending) == 0 {
		p.mu.Lock()
		idle := len(p.inflight) == 0
		p.mu.Unlock()
		if idle { // everything answered: the buffers go until the next bundle
			clear(s.free)
			s.free = s.free[:0]
		}
	}
	return nil
}

// send publishes one bundle's frames, throttled, keeping at most
// maxPendingFrames unacknowledged. A listed entry is read first; one gone
// meanwhile (delivered) is skipped.
func (s *sender) send(ctx context.Context, e entry) error {
	p := s.p
	if e.lazy {
		var ok bool
		var err error
		e, ok, err = p.get(ctx, e.id, &s.rbuf)
		if cap(s.rbuf) > maxReadBuffer {
			s.rbuf = nil
		}
		if err != nil {
			return fmt.Errorf("sync: read outbox: %w", err)
		}
		if !ok {
			return nil
		}
	}
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
	p.log.Debug("sync: bundle sent", "id", e.id, "digest", wire.FormatHash(digest), "frames", c.count, "bytes", len(e.data))
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
