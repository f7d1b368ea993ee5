package sync

import (
	"context"
	"crypto/tls"
	"log/slog"
	"net"
	gosync "sync"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/edgeseal/edgeseal/bundle/wire"
)

// Delivery is one reassembled bundle for the archive.
type Delivery struct {
	Site, Device, Topic string
	ID                  string // the agent's outbox id
	Bundle              []byte
	Digest              [32]byte // SHA-256 of Bundle, checked
	// Hashed is Bundle with Digest, computed by the assembler over
	// exactly these bytes (archive.Archive.AdmitHashed takes it so the
	// bundle is not hashed again).
	Hashed wire.Hashed
}

// Handler processes a delivery; a non-empty reply (a signed receipt or
// rejection) is published on the device's receipts topic. A Handler must be
// idempotent: a bundle can arrive more than once. When it returns an error
// nothing is replied and the agent sends the bundle again later.
type Handler func(ctx context.Context, d Delivery) (reply []byte, err error)

// Admitter is the pipelined form of Handler. The Subscriber calls it for
// each device's deliveries one at a time, in the order they arrived, and
// for different devices at once (each device has a lane of its own: see
// lanes.go), while the next frames are received. It should do only the
// part of the work that must follow a device's order (verifying a bundle
// against the one before it) and must be safe for concurrent calls of
// different devices; it returns a wait function that the Subscriber calls
// on another goroutine for the answer (as Handler's: a non-empty reply is
// published, an error means no reply). A device's answers are waited for
// and published in the order its deliveries arrived, never one before an
// earlier one; different devices' answers in any order. The device's next
// delivery is admitted without waiting for the answer, so several bundles
// can be on their way to durable storage at once; a device whose Admit or
// answer is slow (held) holds up only its own later deliveries. The wait
// function must honour ctx.
type Admitter func(ctx context.Context, d Delivery) (wait func(ctx context.Context) (reply []byte, err error))

// DefaultMaxPending is SubscriberOptions.MaxPending's default.
const DefaultMaxPending = 64

// EnrollHandler processes an enrollment request that came on
// edgeseal/v1/<site>/<device>/enroll (the topic's site and device, the
// message bytes); a non-empty reply (a signed EnrollAck) is published on
// EnrollReplyTopic. It must be idempotent (QoS 1 can repeat a message); an
// error means no reply.
type EnrollHandler func(ctx context.Context, site, device string, request []byte) (reply []byte, err error)

// SubscriberOptions configure NewSubscriber.
type SubscriberOptions struct {
	Broker   string      // tcp:// or ssl://, required
	ClientID string      // required, stable per archive instance
	TLS      *tls.Config // for ssl://
	// Group, when set, makes the subscriptions shared:
	// $share/<group>/edgeseal/v1/+/+/bundles (and .../enroll), so that
	// several archives split the bundles between them. Only for a broker
	// that authorizes SUBSCRIBE (the embedded broker does; Mosquitto's
	// acl_file does not): any client allowed to join the group takes a
	// share of the messages, and a device the broker may not deliver them
	// to makes them disappear. Empty (the default): direct subscriptions
	// to BundlesFilter and EnrollFilter, which no other client can take
	// messages from.
	Group string
	// Dial, when set, opens the connection to the broker instead of
	// dialling Broker (whose URL then only names it in logs and errors;
	// TLS is not applied): the archive reaches its embedded broker this
	// way, in process.
	Dial    func(ctx context.Context) (net.Conn, error)
	Handler Handler // this, or Admit, is required
	// Admit, instead of Handler, pipelines deliveries, one lane per
	// device (see Admitter).
	Admit Admitter
	// MaxPending and MaxPendingBytes bound the deliveries received and
	// not yet answered in all lanes, and their bundles' bytes (Admit only;
	// each keeps its bundle in memory until answered; one delivery is
	// always let in, however large); beyond them, receiving waits and the
	// broker holds the next messages. Defaults DefaultMaxPending and
	// DefaultMaxPendingBytes.
	MaxPending      int
	MaxPendingBytes int64
	// MaxLanes bounds the devices with deliveries admitted or awaiting
	// their answer at once (Admit only): a delivery of another device
	// waits, as above, until one of them has answered all of its own.
	// Default DefaultMaxLanes.
	MaxLanes int
	// MaxReplies bounds the replies (receipts, rejections, enrollment
	// answers) published and not yet confirmed by the broker; past it a
	// reply is dropped, logged and counted (SubscriberStats.RepliesDropped):
	// see publishReply. Default DefaultMaxReplies.
	MaxReplies int
	// EnrollHandler, when set, also subscribes to enrollment requests:
	// EnrollFilter, or SharedEnrollFilter(Group) when Group is set.
	EnrollHandler EnrollHandler
	// DeviceAlertHandler, when set, also subscribes to the devices'
	// alerts: DeviceAlertsFilter, or its shared form when Group is set.
	// It gets each alert that parses (ParseDeviceAlert) and whose site
	// and device are the topic's; the others are dropped and counted
	// (SubscriberStats.BadAlerts). It runs on the receiving goroutine and
	// must not block.
	DeviceAlertHandler func(ctx context.Context, a *DeviceAlert)
	// Subscribed, when set, runs each time the subscriptions are in
	// place on a new connection, before messages are served (an embedded
	// broker opens its listener to devices then). It must not block.
	Subscribed func()
	Logger     *slog.Logger
	Limits     AssemblerLimits
	// Frames, when set, joins the frames of multi-frame bundles instead
	// of an in-memory Assembler with Limits: archives sharing Group
	// (replicas) need a FrameStore they all share, since the broker deals
	// the frames of one bundle to different members of the group.
	Frames         FrameStore
	ConnectTimeout time.Duration // default 10 s
	BackoffMin     time.Duration // default 500 ms
	BackoffMax     time.Duration // default 60 s
}

// SubscriberStats counts what a Subscriber did.
type SubscriberStats struct {
	Connected     bool
	Handled       uint64 // Handler calls (with Admit: answers waited for)
	Enrollments   uint64 // EnrollHandler calls
	HandlerErrors uint64
	Replies       uint64
	// RepliesDropped counts replies not published because MaxReplies
	// were waiting for the broker.
	RepliesDropped uint64
	BadFrames      uint64 // frames refused by topic or Assembler
	// FramesLost counts frames the FrameStore failed to keep after the
	// subscriber's tries (not refused: the store unreachable). They are
	// acknowledged all the same; their bundle comes again at the agent's
	// resend. Also counted in BadFrames.
	FramesLost   uint64
	DeviceAlerts uint64 // device alerts handed to DeviceAlertHandler
	// BadAlerts counts device alerts dropped: too large, not well formed,
	// or naming another device than their topic's.
	BadAlerts uint64
	Assembler AssemblerStats // zero with SubscriberOptions.Frames
	// Lanes is the devices with a lane at the moment (Admit only).
	Lanes     int
	LastError string
}

// Subscriber receives bundles for the archive (see the package doc).
type Subscriber struct {
	opts   SubscriberOptions
	tls    *tls.Config
	filter string // bundles
	enroll string // enrollment requests
	alerts string // device alerts
	log    *slog.Logger
	asm    *Assembler // nil when opts.Frames is set
	frames FrameStore

	replies chan struct{} // one token per reply published and not yet confirmed

	mu      gosync.Mutex
	running bool
	ctx     context.Context
	lanes   *lanes // Admit: this run's lanes
	link    *link
	stats   SubscriberStats
	// badAlertLog is when a dropped device alert was last logged at
	// warning level (at most once per badAlertLogEvery).
	badAlertLog time.Time
}

// badAlertLogEvery bounds the warnings about dropped device alerts.
const badAlertLogEvery = time.Minute

// NewSubscriber checks opts and returns a Subscriber; Start runs it.
func NewSubscriber(opts SubscriberOptions) (*Subscriber, error) {
	tc, err := checkBroker(opts.Broker, opts.TLS)
	if err != nil {
		return nil, err
	}
	if opts.ClientID == "" {
		return nil, &ConfigError{Field: "ClientID", Reason: "required (stable, for the persistent session)"}
	}
	if (opts.Handler == nil) == (opts.Admit == nil) {
		return nil, &ConfigError{Field: "Handler", Reason: "exactly one of Handler and Admit is required"}
	}
	if opts.MaxPending <= 0 {
		opts.MaxPending = DefaultMaxPending
	}
	if opts.MaxPendingBytes <= 0 {
		opts.MaxPendingBytes = DefaultMaxPendingBytes
	}
	if opts.MaxLanes <= 0 {
		opts.MaxLanes = DefaultMaxLanes
	}
	if opts.MaxReplies <= 0 {
		opts.MaxReplies = DefaultMaxReplies
	}
	if opts.Group != "" && (!ValidID(opts.Group) || containsAny(opts.Group, "/+#")) {
		return nil, &ConfigError{Field: "Group", Reason: "must be a single topic level"}
	}
	setDur(&opts.ConnectTimeout, 10*time.Second)
	setDur(&opts.BackoffMin, 500*time.Millisecond)
	setDur(&opts.BackoffMax, 60*time.Second)
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	bundlesFilter, enrollFilter := subscriptionFilters(opts.Group)
	alertsFilter := DeviceAlertsFilter
	if opts.Group != "" {
		alertsFilter = "$share/" + opts.Group + "/" + DeviceAlertsFilter
	}
	s := &Subscriber{opts: opts, tls: tc, filter: bundlesFilter, enroll: enrollFilter, alerts: alertsFilter,
		log: opts.Logger.With("component", "sync.subscriber"), frames: opts.Frames,
		replies: make(chan struct{}, opts.MaxReplies)}
	if s.frames == nil {
		s.asm = NewAssembler(opts.Limits)
		s.frames = MemFrames{s.asm}
	}
	return s, nil
}

func containsAny(s, chars string) bool {
	for i := 0; i < len(s); i++ {
		for j := 0; j < len(chars); j++ {
			if s[i] == chars[j] {
				return true
			}
		}
	}
	return false
}

// Stats returns a snapshot.
func (s *Subscriber) Stats() SubscriberStats {
	s.mu.Lock()
	st, ls := s.stats, s.lanes
	s.mu.Unlock()
	if s.asm != nil {
		st.Assembler = s.asm.Stats()
	}
	if ls != nil {
		st.Lanes = ls.count()
	}
	return st
}

// Start subscribes and serves until ctx is done, reconnecting with capped,
// jittered exponential backoff; it returns ctx's error.
func (s *Subscriber) Start(ctx context.Context) error {
	s.mu.Lock()
	if s.running {
		s.mu.Unlock()
		return &ConfigError{Field: "Start", Reason: "already running"}
	}
	s.running, s.ctx = true, ctx
	if s.opts.Admit != nil {
		run, stop := context.WithCancel(context.WithoutCancel(ctx))
		ls := newLanes(s, run, ctx)
		s.lanes = ls
		defer func() { stop(); ls.wg.Wait() }()
	}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.running, s.link, s.stats.Connected, s.lanes = false, nil, false, nil
		s.mu.Unlock()
	}()
	bo := backoff{min: s.opts.BackoffMin, max: s.opts.BackoffMax}
	failing := false
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		l, err := dial(ctx, dialConfig{broker: s.opts.Broker, clientID: s.opts.ClientID, tls: s.tls,
			connectTimeout: s.opts.ConnectTimeout, onMessage: s.onMessage, custom: s.opts.Dial})
		if err == nil {
			err = waitToken(ctx, l.c.SubscribeMultiple(s.filters(), nil), l, s.opts.ConnectTimeout)
			if err == nil {
				if failing {
					s.log.Info("sync: broker connection restored", "broker", s.opts.Broker)
				}
				failing = false
				bo.reset()
				if s.opts.Subscribed != nil {
					s.opts.Subscribed()
				}
				s.setLink(l)
				err = s.serve(ctx, l)
				s.setLink(nil)
			} else {
				err = &PublishError{Topic: s.filter, Err: err}
			}
			l.c.Disconnect(250)
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		s.mu.Lock()
		s.stats.LastError = err.Error()
		s.mu.Unlock()
		if !failing {
			s.log.Warn("sync: broker connection failed; retrying with backoff", "broker", s.opts.Broker, "err", err)
			failing = true
		}
		if err := sleepCtx(ctx, bo.next()); err != nil {
			return err
		}
	}
}

// filters are the subscriptions (QoS 1): bundles, enrollment requests
// when there is an EnrollHandler, device alerts when there is a
// DeviceAlertHandler.
func (s *Subscriber) filters() map[string]byte {
	f := map[string]byte{s.filter: 1}
	if s.opts.EnrollHandler != nil {
		f[s.enroll] = 1
	}
	if s.opts.DeviceAlertHandler != nil {
		f[s.alerts] = 1
	}
	return f
}

// serve waits until ctx is done or the link fails; it also polls the link,
// since paho can report a dead connection late.
func (s *Subscriber) serve(ctx context.Context, l *link) error {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-l.lost:
			return &ConnectError{Broker: s.opts.Broker, Err: l.cause()}
		case <-tick.C:
			if cause := l.cause(); cause != nil {
				return &ConnectError{Broker: s.opts.Broker, Err: cause}
			}
		}
	}
}

func (s *Subscriber) setLink(l *link) {
	s.mu.Lock()
	s.link = l
	s.stats.Connected = l != nil
	s.mu.Unlock()
}

// onMessage runs on paho's router goroutine, in arrival order; paho
// acknowledges the message when it returns: with a Handler, after it has
// finished; with Admit, once the delivery is queued in its device's lane
// (its verification and answer may still be on their way). Either way a PUBACK is not delivery: the earlier
// frames of a bundle were acknowledged as they came, and only the reply
// (published after the answer is durable) lets the agent drop a bundle.
func (s *Subscriber) onMessage(c mqtt.Client, m mqtt.Message) {
	s.mu.Lock()
	ctx, ls := s.ctx, s.lanes
	s.mu.Unlock()
	if site, device, ok := parseEnrollTopic(m.Topic()); ok && s.opts.EnrollHandler != nil {
		s.onEnroll(ctx, c, site, device, m.Payload())
		return
	}
	if site, device, ok := parseDeviceAlertsTopic(m.Topic()); ok && s.opts.DeviceAlertHandler != nil {
		s.onDeviceAlert(ctx, site, device, m.Payload())
		return
	}
	site, device, ok := parseBundlesTopic(m.Topic())
	if !ok {
		s.count(func(st *SubscriberStats) { st.BadFrames++ })
		s.log.Warn("sync: message on an unexpected topic dropped", "topic", m.Topic())
		return
	}
	if s.log.Enabled(ctx, slog.LevelDebug) {
		if f, err := DecodeFrame(m.Payload()); err == nil {
			s.log.Debug("sync: frame", "device", site+"/"+device, "id", f.ID, "index", f.Index, "count", f.Count, "dup", m.Duplicate(), "mid", m.MessageID())
		}
	}
	// With a shared FrameStore, Add returns once the frame is committed:
	// only then is it acknowledged.
	done, err := s.addFrame(ctx, site+"/"+device, m.Payload())
	if err != nil {
		s.count(func(st *SubscriberStats) { st.BadFrames++ })
		if IsFrameRefusal(err) {
			s.log.Warn("sync: frame refused", "topic", m.Topic(), "err", err)
		} else {
			if ctx.Err() == nil {
				s.count(func(st *SubscriberStats) { st.FramesLost++ })
			}
			s.log.Error("sync: frame not kept; the agent will send its bundle again", "topic", m.Topic(), "err", err)
		}
		return
	}
	if done == nil {
		return
	}
	d := Delivery{Site: site, Device: device, Topic: m.Topic(), ID: done.ID, Bundle: done.Bundle, Digest: done.Digest, Hashed: done.Hashed}
	if s.opts.Admit == nil {
		reply, err := s.opts.Handler(ctx, d)
		s.answer(ctx, c, d, reply, err)
		return
	}
	if ls != nil {
		ls.dispatch(&admitted{c: c, d: d})
	}
}

// answer publishes a delivery's reply on its device's receipts topic
// (nothing on an error: the agent sends the bundle again).
func (s *Subscriber) answer(ctx context.Context, c mqtt.Client, d Delivery, reply []byte, err error) {
	s.count(func(st *SubscriberStats) { st.Handled++ })
	if err != nil {
		s.count(func(st *SubscriberStats) { st.HandlerErrors++; st.LastError = err.Error() })
		s.log.Error("sync: handler failed; no reply, the agent will send again", "device", d.Site+"/"+d.Device,
			"id", d.ID, "digest", wire.FormatHash(d.Digest), "err", err)
		return
	}
	if len(reply) == 0 {
		return
	}
	s.publishReply(ctx, c, ReceiptsTopic(d.Site, d.Device), reply, "device", d.Site+"/"+d.Device, "id", d.ID, "digest", wire.FormatHash(d.Digest))
}

// onEnroll hands an enrollment request to the EnrollHandler and publishes
// its answer (not waited for, as for bundles).
func (s *Subscriber) onEnroll(ctx context.Context, c mqtt.Client, site, device string, request []byte) {
	if len(request) > MaxEnrollMessage {
		s.count(func(st *SubscriberStats) { st.BadFrames++ })
		s.log.Warn("sync: enrollment request too large; dropped", "device", site+"/"+device, "bytes", len(request))
		return
	}
	reply, err := s.opts.EnrollHandler(ctx, site, device, request)
	s.count(func(st *SubscriberStats) { st.Enrollments++ })
	if err != nil {
		s.count(func(st *SubscriberStats) { st.HandlerErrors++; st.LastError = err.Error() })
		s.log.Error("sync: enrollment handler failed; no answer", "device", site+"/"+device, "err", err)
		return
	}
	if len(reply) == 0 {
		return
	}
	s.publishReply(ctx, c, EnrollReplyTopic(site, device), reply, "device", site+"/"+device)
}

// onDeviceAlert hands a device alert to the DeviceAlertHandler when it
// parses and names the device of its topic (the broker's ACL lets a
// device publish only on its own alert topic).
func (s *Subscriber) onDeviceAlert(ctx context.Context, site, device string, payload []byte) {
	a, err := ParseDeviceAlert(payload)
	if err == nil && (a.Site != site || a.Device != device) {
		err = &DeviceAlertError{Reason: "names device " + a.Site + "/" + a.Device}
	}
	if err != nil {
		var loud bool
		s.count(func(st *SubscriberStats) {
			st.BadAlerts++
			now := time.Now()
			if loud = now.Sub(s.badAlertLog) >= badAlertLogEvery; loud {
				s.badAlertLog = now
			}
		})
		lvl := slog.LevelDebug
		if loud {
			lvl = slog.LevelWarn
		}
		s.log.Log(ctx, lvl, "sync: device alert dropped (counted; logged at warning level once a minute)", "device", site+"/"+device, "bytes", len(payload), "err", err)
		return
	}
	s.count(func(st *SubscriberStats) { st.DeviceAlerts++ })
	s.opts.DeviceAlertHandler(ctx, a)
}

func (s *Subscriber) watch(ctx context.Context, tok mqtt.Token, topic string) {
	if err := waitToken(ctx, tok, nil, 2*time.Minute); err != nil && ctx.Err() == nil {
		s.log.Warn("sync: reply not confirmed by the broker", "topic", topic, "err", err)
	}
}

func (s *Subscriber) count(fn func(*SubscriberStats)) {
	s.mu.Lock()
	fn(&s.stats)
	s.mu.Unlock()
}

// Alert publishes payload on edgeseal/v1/alerts at QoS 1. It queues the
// message and does not wait for the broker's PUBACK, so it may be called
// from a Handler; it fails with ErrNotConnected when there is no link.
func (s *Subscriber) Alert(ctx context.Context, payload []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	l := s.link
	s.mu.Unlock()
	if l == nil || l.cause() != nil {
		return &PublishError{Topic: AlertsTopic, Err: ErrNotConnected}
	}
	tok := l.c.Publish(AlertsTopic, 1, false, payload)
	select {
	case <-tok.Done():
		if err := tok.Error(); err != nil {
			return &PublishError{Topic: AlertsTopic, Err: err}
		}
	default:
		go s.watch(ctx, tok, AlertsTopic)
	}
	return nil
}
