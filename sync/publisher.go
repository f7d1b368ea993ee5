package sync

import (
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"log/slog"
	"slices"
	gosync "sync"
	"sync/atomic"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/edgeseal/edgeseal/bundle/archivesig"
	"github.com/edgeseal/edgeseal/bundle/wire"
)

// Outbox is the agent's queue of sealed bundles; *store.Journal satisfies
// it. Outbox calls fn for each entry in id order; DeleteOutbox of an absent
// id is a no-op.
type Outbox interface {
	Outbox(ctx context.Context, fn func(id string, data []byte) error) error
	DeleteOutbox(ctx context.Context, id string) error
}

// OutboxLister is an Outbox that lists ids without reading the bundles
// and reads one entry by id (ok false: gone meanwhile); *store.Journal
// implements it. With it the publisher reads only the bundles it sends,
// not those in flight ahead of them on every pass, and each one only when
// its turn to be sent comes (one bundle in memory, not a window's worth).
type OutboxLister interface {
	OutboxIDs(ctx context.Context, fn func(id string) error) error
	OutboxGet(ctx context.Context, id string) (data []byte, ok bool, err error)
}

// OutboxDigester is an OutboxLister that also gives an entry's SHA-256,
// kept with the entry since the bundle was sealed, so that the publisher
// does not hash the bundle again to send it (ok false: gone meanwhile).
// The digest must be the SHA-256 of data: the archive refuses frames
// whose bytes do not hash to it, and such an entry is never delivered.
// The entry is read into *buf, grown as needed: the publisher passes the
// same buffer for each bundle it sends and keeps nothing of data once the
// bundle's frames are cut (nil buf: a fresh slice).
type OutboxDigester interface {
	OutboxGetDigest(ctx context.Context, id string, buf *[]byte) (data []byte, digest [32]byte, ok bool, err error)
}

// OutboxBatchDeleter is an Outbox that deletes several entries with one
// durable step (absent ids are no-ops, as for DeleteOutbox); the publisher
// uses it for receipts that arrived together.
type OutboxBatchDeleter interface {
	DeleteOutboxes(ctx context.Context, ids []string) error
}

// DefaultWindow is PublisherOptions.Window's default: the bundles sent
// and not yet receipted. The archive answers a bundle only once the
// group it was verified in is durable and covered by a signed log
// checkpoint, so an answer takes a few hundred milliseconds however idle
// the archive is, and a drain moves at most a window per answer time. A
// larger window costs the agent no memory (it reads each bundle only to
// send it), but the archive's subscriber holds at most MaxPending
// deliveries of all devices together (SubscriberOptions, 64 by default):
// with 32, eight devices draining at once filled it four times over and
// held every device's admission behind it. Eight devices of 8 fit.
const DefaultWindow = 8

// PublisherOptions configure NewPublisher.
type PublisherOptions struct {
	Broker   string      // tcp://host:port or ssl://host:port, required
	ClientID string      // default "edgeseal-<site>-<device>"; keep it stable
	Site     string      // required, [A-Za-z0-9._-]{1,64}
	Device   string      // required, [A-Za-z0-9._-]{1,64}
	TLS      *tls.Config // for ssl://: roots and client certificate; InsecureSkipVerify is refused

	Outbox       Outbox            // required
	ArchiveKey   ed25519.PublicKey // required: receipts must verify against it
	ArchiveKeyID string            // DSSE key id of ArchiveKey; "" accepts any id whose signature verifies
	// ArchiveKeys, when set, replaces ArchiveKey and ArchiveKeyID: replies
	// verify under the keys it accepts (the archive's key rotations).
	ArchiveKeys ArchiveKeyring

	MaxMessage     int           // bytes per MQTT message, default DefaultMaxMessage
	Window         int           // bundles sent and not yet receipted, default DefaultWindow
	BytesPerSecond int64         // 0: unlimited
	ResendAfter    time.Duration // resend what has no receipt after this, default 2 min
	// RetryHeld: entries the archive rejected are sent once more after
	// this long (an operator may have approved the device or fixed its
	// golden values meanwhile), the wait doubling up to 8 times RetryHeld
	// while nothing is delivered. Default 5 min; negative: never (only
	// Requeue, a restart or an earlier entry's delivery send them again).
	// Entries refused for a gap (GapCheck) are sent again after
	// ResendAfter instead: the archive is waiting for an earlier bundle.
	// Entries answered held (HeldCheck: an archive replica was still
	// committing the device's previous bundle) are sent again after
	// HeldRetry.
	RetryHeld time.Duration
	// HeldRetry is the first wait before a bundle the archive answered
	// held is sent again, default 250 ms; each further held answer for
	// the same entry doubles it, up to 16 times HeldRetry and never past
	// ResendAfter. Its delivery resets it.
	HeldRetry      time.Duration
	Tick           time.Duration // outbox poll interval, default 5 s
	ConnectTimeout time.Duration // default 10 s
	BackoffMin     time.Duration // reconnect backoff, default 500 ms
	BackoffMax     time.Duration // default 60 s

	// OnReceipt is called with a verified receipt before the entry is
	// deleted (the agent journals delivery.receipt); if it fails the
	// entry stays and is sent again later.
	OnReceipt func(ctx context.Context, id string, receipt []byte) error
	// OnReceipts, when set, is called instead of OnReceipt with the
	// receipts that arrived together (ids and receipts aligned, in
	// arrival order), so they can be made durable at once; if it fails
	// none of the entries is deleted, and when it failed for several it
	// is called again for each of them alone, in order (one refused
	// receipt does not keep back the others).
	OnReceipts func(ctx context.Context, ids []string, receipts [][]byte) error
	// OnParsedReceipts, when set, is called instead of OnReceipts (same
	// contract) with each receipt as the publisher parsed it and verified
	// its signature (archivesig.ParsedReceipt): the callee need not parse
	// it again (agent.Core.JournalParsedReceipts).
	OnParsedReceipts func(ctx context.Context, ids []string, receipts []archivesig.ParsedReceipt) error
	// OnRejection is called when the archive refused an entry with a
	// signed rejection. The entry is kept in the outbox and not sent again
	// until RetryHeld passes, Requeue(id), a restart, or the delivery of an entry with a
	// smaller id (the rejection may then have been a gap caused by a
	// message the broker lost, and the entry is sent once more). When it
	// is set the publisher logs the rejection and its retries at debug
	// level only: the callback reports it.
	OnRejection func(ctx context.Context, id string, rej *Rejection, raw []byte)
	// OnSent is called when the broker acknowledged (PUBACK) every frame
	// of entry id, each time it is sent. It must not block. A PUBACK is not
	// delivery: the entry stays until a receipt.
	OnSent func(id string)

	// MaxAlerts bounds the device alerts (Alert) waiting for the broker;
	// past it the oldest is dropped. Default DefaultMaxAlerts.
	MaxAlerts int

	Logger *slog.Logger // nil: discard
}

// Stats is a snapshot for status pages and tests.
type Stats struct {
	Connected bool
	// Since is when Connected last changed: when the connection came up
	// or, not connected, when it was lost (or Start began trying).
	Since        time.Time
	InFlight     int // bundles sent, waiting for a receipt
	PeakInFlight int // highest InFlight seen
	// Window is the window in force: PublisherOptions.Window, or less
	// while the archive answers bundles held (see heldShrink).
	Window        int
	OutboxDepth   int    // entries in the outbox (exact after a full scan, else a lower bound)
	Held          int    // rejected entries kept in the outbox, not sent
	Delivered     uint64 // entries deleted after a receipt
	Rejected      uint64 // signed rejections received
	Requeued      uint64 // rejected entries sent again after an earlier one was delivered
	BadReplies    uint64 // receipts or rejections that did not verify or match
	Resent        uint64 // bundles sent again (reconnect, timeout or a later bundle answered first)
	BundlesSent   uint64
	FramesSent    uint64
	BytesSent     uint64
	LastError     string
	LastErrorTime time.Time
}

type flight struct {
	digest [32]byte
	sent   time.Time
	order  uint64 // when it was sent on this connection, counting up
	epoch  uint64 // Stats.Delivered when it was sent
}

// Publisher sends the outbox to the archive (see the package doc).
type Publisher struct {
	opts     PublisherOptions
	tls      *tls.Config
	device   string // "<site>/<device>"
	topic    string
	receipts string
	log      *slog.Logger
	bucket   *tokenBucket
	wake     chan struct{}
	now      func() time.Time

	rmu    gosync.Mutex
	rqueue []mqtt.Message // replies received, not yet handled (replyLoop)
	rwake  chan struct{}

	amu      gosync.Mutex
	alerts   []queuedAlert // device alerts waiting for the broker (publisher_alert.go)
	alertSeq uint64
	astats   AlertStats
	awake    chan struct{}

	mu        gosync.Mutex
	running   bool
	ctx       context.Context
	inflight  map[string]*flight
	held      map[string]bool          // not sent: true rejected by the archive, false unsendable id
	gapHeld   map[string]time.Time     // held entries refused for a gap or held, and when: sent again after ResendAfter or heldBack
	heldBack  map[string]time.Duration // entries answered held: the wait before their next send (doubles per held answer)
	heldWait  time.Duration            // current RetryHeld wait (doubles, reset by a delivery)
	heldAt    time.Time                // last rejection or retry of held entries
	recent    map[[32]byte]bool        // digests delivered lately (duplicate receipts)
	recentLog [][32]byte
	sendOrder uint64 // the last flight.order given
	// window is the bundles that may await receipts now: opts.Window,
	// halved when the archive answers a bundle held (heldShrink) and
	// grown back by one a delivery.
	window int
	// shrunkAt is sendOrder when window was last halved: held answers to
	// bundles sent before that do not halve it again.
	shrunkAt uint64
	stats    Stats
	// listed is the outbox's ids in order as an OutboxLister last listed
	// them, less those delivered or found gone since (publisher_scan.go);
	// relist makes the next scan list the outbox again (Wake, the tick,
	// a new connection).
	listed []string
	relist atomic.Bool
}

// NewPublisher checks opts and returns a Publisher; Start runs it.
func NewPublisher(opts PublisherOptions) (*Publisher, error) {
	device := opts.Site + "/" + opts.Device
	if err := wire.CheckDevice(device); err != nil {
		return nil, &ConfigError{Field: "Site/Device", Reason: err.Error()}
	}
	tc, err := checkBroker(opts.Broker, opts.TLS)
	if err != nil {
		return nil, err
	}
	if opts.Outbox == nil {
		return nil, &ConfigError{Field: "Outbox", Reason: "required"}
	}
	if opts.ArchiveKeys == nil && len(opts.ArchiveKey) != ed25519.PublicKeySize {
		return nil, &ConfigError{Field: "ArchiveKey", Reason: "required Ed25519 public key"}
	}
	if opts.ClientID == "" {
		opts.ClientID = "edgeseal-" + opts.Site + "-" + opts.Device
	}
	if opts.MaxMessage <= 0 {
		opts.MaxMessage = DefaultMaxMessage
	}
	opts.MaxMessage = max(opts.MaxMessage, MinMessage)
	if opts.Window <= 0 {
		opts.Window = DefaultWindow
	}
	if opts.BytesPerSecond < 0 {
		return nil, &ConfigError{Field: "BytesPerSecond", Reason: "negative"}
	}
	setDur(&opts.ResendAfter, 2*time.Minute)
	if opts.RetryHeld == 0 {
		opts.RetryHeld = 5 * time.Minute
	}
	setDur(&opts.HeldRetry, 250*time.Millisecond)
	setDur(&opts.Tick, 5*time.Second)
	setDur(&opts.ConnectTimeout, 10*time.Second)
	setDur(&opts.BackoffMin, 500*time.Millisecond)
	setDur(&opts.BackoffMax, 60*time.Second)
	if opts.MaxAlerts <= 0 {
		opts.MaxAlerts = DefaultMaxAlerts
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	p := &Publisher{
		opts: opts, tls: tc, device: device,
		topic: BundlesTopic(opts.Site, opts.Device), receipts: ReceiptsTopic(opts.Site, opts.Device),
		log:  opts.Logger.With("component", "sync.publisher", "device", device),
		wake: make(chan struct{}, 1), rwake: make(chan struct{}, 1), awake: make(chan struct{}, 1), now: time.Now,
		inflight: make(map[string]*flight), held: make(map[string]bool), gapHeld: make(map[string]time.Time), heldBack: make(map[string]time.Duration), recent: make(map[[32]byte]bool),
	}
	p.window = opts.Window
	p.bucket = newTokenBucket(opts.BytesPerSecond, opts.MaxMessage, time.Now)
	return p, nil
}

func setDur(d *time.Duration, def time.Duration) {
	if *d <= 0 {
		*d = def
	}
}

// Wake tells the publisher a new bundle is in the outbox. It never blocks.
func (p *Publisher) Wake() {
	p.relist.Store(true)
	p.kick()
}

// kick wakes the sender without a new listing of the outbox (its window
// freed, an entry to send again): the ids listed before still hold.
func (p *Publisher) kick() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// Requeue lets a rejected (held) entry be sent again.
func (p *Publisher) Requeue(id string) {
	p.mu.Lock()
	delete(p.held, id)
	p.mu.Unlock()
	p.Wake()
}

// retryHeld sends the rejected entries again once their wait is over:
// those refused for a gap after ResendAfter (the archive waits for an
// earlier bundle, as for a missing receipt), the others after RetryHeld.
func (p *Publisher) retryHeld() {
	p.retryGaps()
	if p.opts.RetryHeld < 0 {
		return
	}
	p.mu.Lock()
	if p.heldWait == 0 {
		p.heldWait = p.opts.RetryHeld
	}
	if p.heldAt.IsZero() || p.now().Sub(p.heldAt) < p.heldWait {
		p.mu.Unlock()
		return
	}
	var again []string
	for id, rejected := range p.held {
		if rejected {
			delete(p.held, id)
			again = append(again, id)
		}
	}
	p.heldAt = p.now()
	p.heldWait = min(2*p.heldWait, 8*p.opts.RetryHeld)
	p.stats.Requeued += uint64(len(again))
	p.mu.Unlock()
	if len(again) > 0 {
		if p.opts.OnRejection != nil { // the caller reports refusals, once
			p.log.Debug("sync: sending rejected bundles once more", "ids", len(again), "next_retry", p.heldWait)
		} else {
			p.log.Warn("sync: sending rejected bundles once more", "ids", len(again), "next_retry", p.heldWait)
		}
		p.Wake()
	}
}

// retryGaps sends again the entries held for a gap longer than
// ResendAfter. A gap rejection names an earlier bundle the archive has not
// got; when that bundle's delivery does not requeue them (its receipt
// came before a stale rejection, or it was lost on the way), nothing else
// would until RetryHeld. A gap that persists costs one send per
// ResendAfter. Entries answered held are sent again after their own
// shorter wait (heldBack): the archive has the earlier bundle and was
// still committing it.
func (p *Publisher) retryGaps() {
	p.mu.Lock()
	var again []string
	for id, at := range p.gapHeld {
		wait := p.opts.ResendAfter
		if w, ok := p.heldBack[id]; ok {
			wait = w
		}
		switch {
		case !p.held[id]:
			delete(p.gapHeld, id) // requeued meanwhile
		case p.now().Sub(at) >= wait:
			delete(p.gapHeld, id)
			delete(p.held, id)
			again = append(again, id)
		}
	}
	p.stats.Requeued += uint64(len(again))
	p.mu.Unlock()
	if len(again) > 0 {
		slices.Sort(again)
		p.log.Info("sync: sending bundles refused for a gap or held once more", "ids", again)
		p.Wake()
	}
}

// heldShrink halves the window (not below one bundle) when the archive
// answered held a bundle sent after the window was last halved: archive
// replicas take a device's bundles one commit at a time (each waits for
// the device's previous one), so the rest of a large window would only
// come back held and be sent again. Each delivery grows it back by one
// bundle (delivered), up to PublisherOptions.Window. p.mu is held.
func (p *Publisher) heldShrink(f *flight) {
	if f == nil || f.order <= p.shrunkAt || p.window <= 1 {
		return
	}
	p.window = max(1, p.window/2)
	p.shrunkAt = p.sendOrder
}

// heldWaitFor returns the wait before an entry the archive answered held
// is sent again: HeldRetry at the first held answer, doubled at each
// further one up to 16 times HeldRetry, never past ResendAfter. p.mu is
// held.
func (p *Publisher) heldWaitFor(id string) time.Duration {
	w, ok := p.heldBack[id]
	if !ok {
		w = p.opts.HeldRetry
	} else {
		w = min(2*w, 16*p.opts.HeldRetry)
	}
	w = min(w, p.opts.ResendAfter)
	p.heldBack[id] = w
	return w
}

// Stats returns a snapshot.
func (p *Publisher) Stats() Stats {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := p.stats
	s.InFlight = len(p.inflight)
	s.Window = p.window
	s.Held = len(p.held)
	return s
}

func (p *Publisher) setErr(err error) {
	p.mu.Lock()
	p.stats.LastError = err.Error()
	p.stats.LastErrorTime = p.now()
	p.mu.Unlock()
}

// Start connects and delivers until ctx is done, reconnecting with capped,
// jittered exponential backoff; it returns ctx's error. It may be called
// once at a time.
func (p *Publisher) Start(ctx context.Context) error {
	p.mu.Lock()
	if p.running {
		p.mu.Unlock()
		return &ConfigError{Field: "Start", Reason: "already running"}
	}
	p.running, p.ctx = true, ctx
	p.stats.Since = p.now()
	p.mu.Unlock()
	rctx, stopReplies := context.WithCancel(ctx)
	repliesDone := make(chan struct{})
	go func() { defer close(repliesDone); p.replyLoop(rctx) }()
	defer func() {
		stopReplies()
		<-repliesDone
		p.rmu.Lock()
		clear(p.rqueue) // not acknowledged: the broker sends them again
		p.rqueue = p.rqueue[:0]
		p.rmu.Unlock()
		p.mu.Lock()
		p.running, p.stats.Connected = false, false
		p.mu.Unlock()
	}()
	bo := backoff{min: p.opts.BackoffMin, max: p.opts.BackoffMax}
	failing := false
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		l, err := dial(ctx, dialConfig{broker: p.opts.Broker, clientID: p.opts.ClientID, tls: p.tls,
			connectTimeout: p.opts.ConnectTimeout, onMessage: p.onMessage, manualAck: true})
		if err == nil {
			if failing {
				p.log.Info("sync: broker connection restored", "broker", p.opts.Broker)
			} else {
				p.log.Debug("sync: connected", "broker", p.opts.Broker)
			}
			failing = false
			bo.reset()
			err = p.session(ctx, l)
			l.c.Disconnect(250)
			p.mu.Lock()
			if p.stats.Connected {
				p.stats.Connected, p.stats.Since = false, p.now()
			}
			p.mu.Unlock()
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		p.setErr(err)
		if !failing {
			p.log.Warn("sync: broker connection failed; retrying with backoff", "broker", p.opts.Broker, "err", err)
			failing = true
		}
		if err := sleepCtx(ctx, bo.next()); err != nil {
			return err
		}
	}
}

// session runs one connection: subscribe to receipts, then send the outbox
// in order whenever woken, ticked or a receipt freed the window.
func (p *Publisher) session(ctx context.Context, l *link) error {
	if err := waitToken(ctx, l.c.Subscribe(p.receipts, 1, nil), l, p.opts.ConnectTimeout); err != nil {
		return &PublishError{Topic: p.receipts, Err: err}
	}
	p.mu.Lock()
	p.stats.Connected, p.stats.Since = true, p.now()
	p.stats.Resent += uint64(len(p.inflight))
	clear(p.inflight) // nothing receipted yet is sent again on a new connection
	p.mu.Unlock()
	p.relist.Store(true)
	actx, stopAlerts := context.WithCancel(ctx)
	alertsDone := make(chan struct{})
	go func() { defer close(alertsDone); p.alertLoop(actx, l) }()
	defer func() { stopAlerts(); <-alertsDone }()
	s := &sender{p: p, l: l}
	tick := time.NewTicker(p.opts.Tick)
	defer tick.Stop()
	for {
		if err := s.pump(ctx); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-l.lost:
			return &ConnectError{Broker: p.opts.Broker, Err: l.cause()}
		case <-p.wake:
			p.retryGaps() // a held entry's wait may be over (its timer woke us)
		case <-tick.C:
			p.relist.Store(true) // entries put without a Wake
			if cause := l.cause(); cause != nil {
				return &ConnectError{Broker: p.opts.Broker, Err: cause}
			}
			p.retryHeld()
		}
	}
}
