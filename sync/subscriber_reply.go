package sync

import (
	"context"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// DefaultMaxReplies is SubscriberOptions.MaxReplies's default.
const DefaultMaxReplies = 256

// replyConfirmWait is how long a published reply waits for the broker's
// PUBACK before its place among MaxReplies is freed (paho keeps it and
// sends it again after a reconnect).
const replyConfirmWait = 2 * time.Minute

// publishReply publishes a reply at QoS 1 without waiting for the
// broker (paho delivers the PUBACK on the goroutine a Handler may be
// blocking), keeping at most MaxReplies unconfirmed. Past that the reply
// is dropped, logged and counted, rather than waited for: the wait could
// hold paho's delivery goroutine, which must run for the PUBACKs that free
// places to come in. Dropping is safe: the agent keeps a bundle until a
// receipt or rejection for it arrives and sends it again (after a
// reconnect, after its resend delay, or at once when a later bundle is
// answered first), and the archive answers a repeat with the stored
// receipt or a new rejection. An enrollment answer dropped makes Enroll
// fail with ErrNoAnswer, and the request (kept pending by the archive) is
// sent again by running it again. attrs name the reply in logs.
func (s *Subscriber) publishReply(ctx context.Context, c mqtt.Client, topic string, reply []byte, attrs ...any) {
	select {
	case s.replies <- struct{}{}:
	default:
		s.count(func(st *SubscriberStats) { st.RepliesDropped++ })
		s.log.Warn("sync: reply dropped: too many replies wait for the broker; the agent will send the bundle again",
			append([]any{"topic", topic, "waiting", cap(s.replies)}, attrs...)...)
		return
	}
	tok := c.Publish(topic, 1, false, reply)
	s.count(func(st *SubscriberStats) { st.Replies++ })
	go func() {
		defer func() { <-s.replies }()
		if err := waitToken(ctx, tok, nil, replyConfirmWait); err != nil && ctx.Err() == nil {
			s.log.Warn("sync: reply not confirmed by the broker", "topic", topic, "err", err)
		}
	}()
}
