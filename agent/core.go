package agent

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/edgeseal/edgeseal/agent/policy"
	"github.com/edgeseal/edgeseal/bundle/custody"
	"github.com/edgeseal/edgeseal/bundle/merkle"
	"github.com/edgeseal/edgeseal/bundle/payloadcipher"
	"github.com/edgeseal/edgeseal/bundle/wire"
	"github.com/edgeseal/edgeseal/store"
	"github.com/edgeseal/edgeseal/tpm"
)

// TPM is what the core needs of a TPM. *tpm.TPM implements it.
//
// Sign must fail (with *tpm.PCRMismatchError when the PCRs moved) rather than
// fall back to any other key; the core never signs in software.
type TPM interface {
	Identity() tpm.Identity
	Sign(ctx context.Context, digest []byte) ([]byte, error)
	Quote(ctx context.Context, nonce []byte) (*tpm.Quote, error)
	IncrementCounter(ctx context.Context) (uint64, error)
}

// Options configure a Core.
type Options struct {
	Site   string // site name, first part of the device name
	Device string // device name within the site
	// SealEvery seals once this many records are pending (default 1000).
	SealEvery int
	// SealInterval seals pending records at least this often (default 10s).
	SealInterval time.Duration
	// SealMaxBytes bounds one bundle: a seal takes pending records (with
	// their payloads) up to this many bytes, at least one record, and
	// leaves the rest to the next seal (default DefaultSealMaxBytes).
	// Bounded bundles keep a seal's memory, the outbox value and the
	// archive's work per bundle bounded after a backlog.
	SealMaxBytes int64
	Logger       *slog.Logger
	// Now is the clock for record times; time.Now when nil.
	Now func() time.Time
	// AfterSeal, when set, is called after each seal that wrote a bundle
	// to the outbox (the daemon wakes the sync publisher with it). It must
	// not block.
	AfterSeal func()
	// Policy is the export policy in force; Ingest needs it.
	Policy *policy.Policy
	// OutboxQuota is the outbox size in bytes above which the core
	// raises its over-quota alarm (default DefaultOutboxQuota). Nothing
	// is refused over it; see CheckOutbox.
	OutboxQuota int64
	// Observer is told of exports, rejections, seals and TPM errors (for
	// metrics); nil observes nothing.
	Observer Observer
	// RotateEvery rotates the signing key when the key in force is older
	// than this (its key.create or key.rotate record's time, by Now),
	// before a seal; 0 never rotates on schedule (keys.go).
	RotateEvery time.Duration
	// PCRAuthDir is the TPM state directory, where PCRAuthFile is looked
	// for at every seal attempt (when the TPM is a PCRAuthorizer); ""
	// turns that off.
	PCRAuthDir string
	// StateDir is the data directory, where the core keeps small files
	// of its own (PolicyChangesFile, LastRefusalFile, ContentKeyFile);
	// "" keeps none.
	StateDir string
}

func (o *Options) defaults() error {
	if o.Site == "" || strings.Contains(o.Site, "/") {
		return &ConfigError{Key: "site", Reason: "must be a non-empty name without '/'"}
	}
	if o.Device == "" || strings.Contains(o.Device, "/") {
		return &ConfigError{Key: "device", Reason: "must be a non-empty name without '/'"}
	}
	if o.SealEvery <= 0 {
		o.SealEvery = 1000
	}
	if o.SealInterval <= 0 {
		o.SealInterval = 10 * time.Second
	}
	if o.SealMaxBytes <= 0 {
		o.SealMaxBytes = DefaultSealMaxBytes
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.OutboxQuota <= 0 {
		o.OutboxQuota = DefaultOutboxQuota
	}
	if o.Observer == nil {
		o.Observer = nopObserver{}
	}
	return nil
}

// ConfigError names the configuration key that is wrong.
type ConfigError struct {
	Key, Reason string
}

func (e *ConfigError) Error() string { return fmt.Sprintf("agent: config %s: %s", e.Key, e.Reason) }

// FieldError names the field of an export that is wrong.
type FieldError struct {
	Field, Reason string
}

func (e *FieldError) Error() string { return fmt.Sprintf("agent: %s: %s", e.Field, e.Reason) }

// Core journals custody events and seals the journal into bundles. It is safe
// for concurrent use: appends go straight to the journal's sequencer, seals
// are serialised.
type Core struct {
	opts   Options
	log    *slog.Logger
	j      *store.Journal
	t      TPM
	obs    Observer
	device string // "<site>/<name>"
	origin string
	epoch  uint64 // the journal's sealing epoch (store.Journal.Epoch)

	sealMu  sync.Mutex // one seal at a time
	sealBuf []byte     // the last bundle file written, its buffer kept for the next (under sealMu)
	cache   *sealCache // records not sealed yet, for the next seal
	wake    chan struct{}

	lastSeal atomic.Pointer[SealInfo] // nil until the first seal is known
	sealErr  atomic.Pointer[error]    // the last seal's error, nil after a success
	// outboxAhead: a seal failed after its bundle may have reached the
	// outbox (where the publisher can send it) and before its checkpoint
	// was stored; the next seal adopts it first (seal.go).
	outboxAhead atomic.Bool

	overQuota atomic.Bool // the outbox is over OutboxQuota (as last checked)
	sentMu    sync.Mutex
	sent      map[string]bool     // outbox ids PUBACKed since the start, until delivered
	digests   map[string][32]byte // outbox ids sealed since the start -> bundle digest (under sentMu)
	timeMu    sync.Mutex
	lastTime  time.Time // time of the last record built (see stamp)
	keys      coreKeys  // the signing key in force (keys.go)

	pcrAuth   pcrAuthState               // under sealMu
	pol       policyState                // the policy in force (policyinforce.go)
	gov       governance                 // governance alerts (governance.go)
	alarms    alarmState                 // where alarms go (alarms.go)
	witness   witnessState               // the archive checkpoint accepted last (archivewitness.go)
	ret       localRetention             // local payload retention (localretention.go)
	syncSt    syncState                  // broker link, last delivery and refusal (status_sync.go)
	content   atomic.Pointer[ContentKey] // the archive's content key payloads are sealed to (contentkey.go)
	sealer    *payloadcipher.Sealer      // payload cipher version 2 windows (a new one per key, 1024 payloads or hour)
	contentMu sync.Mutex                 // one content key learned at a time
}

// Open starts a core over an open journal and TPM and journals an
// `agent.start` record. A bundle that reached the outbox before a crash but
// whose checkpoint was not recorded is adopted, so no sealed range is lost.
func Open(ctx context.Context, opts Options, j *store.Journal, t TPM) (*Core, error) {
	if err := opts.defaults(); err != nil {
		return nil, err
	}
	c := &Core{
		opts:   opts,
		log:    opts.Logger,
		j:      j,
		t:      t,
		obs:    opts.Observer,
		device: opts.Site + "/" + opts.Device,
		wake:   make(chan struct{}, 1),
		sent:   map[string]bool{},
		// Room for one bundle: the next seal's records come from memory
		// while the sealer keeps up; the records of a sealer that fell
		// further behind are read back from the journal instead of held
		// in the live heap (the memory limit, agentd.MemoryLimit, is what
		// bounds the agent's RSS).
		cache:  newSealCache(opts.SealMaxBytes, j.Size()),
		sealer: payloadcipher.NewSealer(payloadcipher.DefaultWindowPayloads, payloadcipher.DefaultWindowAge, opts.Now),
	}
	c.origin = merkle.Origin(c.device)
	c.pol.seq.Store(-1)
	var err error
	if c.epoch, err = j.Epoch(); err != nil {
		return nil, fmt.Errorf("agent: %w", err)
	}
	c.initPCRAuth()
	if n := j.Size(); n > 0 {
		raw, err := j.Record(n - 1)
		if err != nil {
			return nil, fmt.Errorf("agent: last record: %w", err)
		}
		r, err := custody.ParseRecord(raw)
		if err != nil {
			return nil, fmt.Errorf("agent: last record %d: %w", n-1, err)
		}
		c.lastTime = r.Time
	}
	if err := c.recoverOutbox(ctx); err != nil {
		return nil, err
	}
	if err := c.recoverLastSeal(ctx); err != nil {
		return nil, err
	}
	if err := c.recoverLastDelivery(ctx); err != nil {
		return nil, err
	}
	if err := c.recoverLastRefusal(); err != nil {
		return nil, err
	}
	if _, err := c.CheckOutbox(ctx); err != nil {
		return nil, err
	}
	if err := c.openKeys(ctx); err != nil {
		return nil, err
	}
	id := t.Identity()
	if _, err := c.Append(ctx, custody.TypeAgentStart, custody.Actor{Kind: "agent", ID: id.KeyID}, map[string]any{
		"keyId": id.KeyID,
		"pcrs":  id.PCRs,
	}, nil); err != nil {
		return nil, fmt.Errorf("agent: journal start: %w", err)
	}
	return c, nil
}

// Device is the "<site>/<name>" the core journals as.
func (c *Core) Device() string { return c.device }

// Journal is the core's journal.
func (c *Core) Journal() *store.Journal { return c.j }

// Append journals one record of type typ with the given actor and body (any
// JSON-marshalable value) and payloads, and returns once it is durable.
func (c *Core) Append(ctx context.Context, typ string, actor custody.Actor, body any, payloads []store.Payload) (store.Appended, error) {
	raw, err := json.Marshal(body)
	if err != nil {
		return store.Appended{}, fmt.Errorf("agent: body: %w", err)
	}
	a, err := c.j.Append(ctx, store.Entry{
		Build: func(seq uint64, prev [32]byte) ([]byte, error) {
			r := custody.Record{Seq: seq, Type: typ, Time: c.stamp(), Device: c.device, Prev: prev, Actor: actor, Body: raw}
			return r.Marshal()
		},
		Payloads: payloads,
	})
	if err != nil {
		return a, err
	}
	c.cache.add(a, payloads)
	c.maybeWake(a.Size)
	return a, nil
}

// stamp returns the time of a record being built: the clock, but never
// before the record built before it. Build functions run in sequence
// order, so records' times never go back (the verifier's records.time),
// neither when concurrent appends took the clock in another order than
// the sequencer numbered them nor when the wall clock steps back.
func (c *Core) stamp() time.Time {
	now := c.opts.Now()
	c.timeMu.Lock()
	defer c.timeMu.Unlock()
	if now.Before(c.lastTime) {
		now = c.lastTime
	}
	c.lastTime = now
	return now
}

// Export is one export handed to the agent.
type Export struct {
	Actor          custody.Actor
	ExportID       string
	App            string
	Workflow       string
	Purpose        string
	Schema         string
	Classification string
	Retention      string
	Destination    string
	Policy         string // "sha256:..." of the policy in force
	MediaType      string
	Data           []byte
}

// ExportReceipt answers an export once its record is durable.
type ExportReceipt struct {
	ExportID string `json:"exportId"`
	Seq      uint64 `json:"seq"`
	Leaf     string `json:"leaf"`
	Size     uint64 `json:"journalSize"`
	Digest   string `json:"digest"`
	// Duplicate is set when the export id was journaled before: the
	// receipt is the original's (its journal size is the size now).
	Duplicate bool `json:"duplicate,omitempty"`
}

// Export journals an export record with its payload bytes in one durable
// commit (sealed to the content key when the core has one: Export has no
// policy, so every payload is).
func (c *Core) Export(ctx context.Context, e Export) (ExportReceipt, error) {
	switch {
	case e.ExportID == "":
		return ExportReceipt{}, &FieldError{Field: "exportId", Reason: "required"}
	case e.App == "":
		return ExportReceipt{}, &FieldError{Field: "app", Reason: "required"}
	case e.Actor.Kind == "" || e.Actor.ID == "":
		return ExportReceipt{}, &FieldError{Field: "actor", Reason: "required"}
	}
	if _, err := wire.ParseHash(e.Policy); err != nil {
		return ExportReceipt{}, &FieldError{Field: "policy", Reason: "want the sha256:<hex> digest of the policy in force"}
	}
	d := sha256.Sum256(e.Data)
	mt := e.MediaType
	if mt == "" {
		mt = "application/octet-stream"
	}
	body := custody.ExportBody{
		ExportID: e.ExportID, App: e.App, Workflow: e.Workflow, Purpose: e.Purpose,
		Schema: e.Schema, Classification: e.Classification, Retention: e.Retention,
		Destination: e.Destination, Policy: e.Policy,
		Payload: custody.PayloadRef{Digest: wire.FormatHash(d), Size: int64(len(e.Data)), MediaType: mt, Canonicalization: "none"},
	}
	payload := store.Payload{Digest: d, Data: e.Data}
	if k := c.content.Load(); k != nil { // no policy here: everything is encrypted
		ct, err := custody.EncryptPayload(&body, c.device, c.sealer, k.Key, e.Data)
		if err != nil {
			return ExportReceipt{}, fmt.Errorf("agent: encrypt payload: %w", err)
		}
		payload = store.Payload{Digest: cipherDigest(&body, ct), Data: ct, Prefix: windowPrefix(&body, ct)}
	}
	a, err := c.Append(ctx, custody.TypeExport, e.Actor, body, []store.Payload{payload})
	if err != nil {
		return ExportReceipt{}, err
	}
	c.obs.ExportAccepted()
	return ExportReceipt{ExportID: e.ExportID, Seq: a.Seq, Leaf: wire.FormatHash(a.Leaf), Size: a.Size, Digest: body.Payload.Digest}, nil
}

// maybeWake nudges the sealer when enough records are pending.
func (c *Core) maybeWake(size uint64) {
	last, _, err := c.j.LastCheckpoint()
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return
	}
	if size-last > uint64(c.opts.SealEvery) { // the last seal's own record is not pending
		select {
		case c.wake <- struct{}{}:
		default:
		}
	}
}
