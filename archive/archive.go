package archive

import (
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/edgeseal/edgeseal/archive/state"
	"github.com/edgeseal/edgeseal/bundle"
	"github.com/edgeseal/edgeseal/store"
)

// DefaultRetention is how long receipts promise to keep a bundle.
const DefaultRetention = 10 * 365 * 24 * time.Hour

// Options configure Open.
type Options struct {
	// Dir is the archive's data directory: log/ (the archive log on the
	// journal engine; tlog/ on the POSIX one), logkeys/ and index/ (Badger
	// journals), objects/ (the default object store), quarantine/, and
	// devices.json. Required.
	Dir string
	// Key is the archive's Ed25519 key: it signs receipts, rejections and
	// the log's checkpoints. Required unless Signer is set.
	Key ed25519.PrivateKey
	// Signer, when set, is the archive's Ed25519 key instead of Key: a
	// key in a PKCS#11 token (archive/keystore). It must be the key the
	// archive's last key rotation announced (see RotateKey).
	Signer crypto.Signer
	// Name is the log's checkpoint origin and the note key name. Default
	// DefaultName.
	Name string
	// LogEngine keeps the archive log: LogEnginePOSIX, LogEngineJournal
	// or LogEngineMySQL (logengine.go). Unset: posix for a new Dir,
	// journal for one whose log is in Dir/log (ResolveLogEngine).
	LogEngine string
	// LogDSN names the database of LogEngineMySQL
	// (github.com/go-sql-driver/mysql form).
	LogDSN string
	// LogCheckpointInterval is the least time between two checkpoints a
	// Tessera engine publishes (its default when zero).
	LogCheckpointInterval time.Duration
	// Objects is the write-once store of bundles. Default: an FSStore
	// under Dir/objects.
	Objects ObjectStore
	// Devices is the registry. Default: Dir/devices.json (OpenDevices);
	// replicas share one in their database (OpenDevicesOn with
	// state.SQL.Registry).
	Devices *Devices
	// EKRoots, when set, are the TPM manufacturer CAs an enrollment
	// request's EK certificate must chain to (Devices.SetEKRoots).
	EKRoots *x509.CertPool
	// Retention is added to the acceptance time in receipts. Default
	// DefaultRetention.
	Retention time.Duration
	// Classes map retention classes to how long a bundle whose export
	// records name them is kept (retention.go); DefaultClass is the
	// class of records without one. Empty: every bundle is kept
	// Retention.
	Classes      map[string]time.Duration
	DefaultClass string
	// OperatorKeys are the Ed25519 keys whose signed statements (legal
	// holds, purges, device approvals and revocations, rekeys) the
	// archive accepts. When set, the log's statements decide which
	// devices are trusted (devices_signed.go).
	OperatorKeys []ed25519.PublicKey
	// Limits bound a bundle. Default bundle.DefaultLimits.
	Limits bundle.Limits
	// Logger receives accepted/refused lines. nil: discard.
	Logger *slog.Logger
	// Alert is called for every refused bundle and every alarm (after it
	// is logged and quarantined). The daemon publishes it on MQTT
	// edgeseal/v1/alerts. It must not block for long.
	Alert func(ctx context.Context, a Alert)
	// Now is the clock. Default time.Now.
	Now func() time.Time
	// Quarantine bounds the quarantine and rate-limits alerts.
	Quarantine QuarantineLimits
	// State, when set, is the store of the devices' chain state
	// (archive/state; chainstate.go), which the caller closes after the
	// archive. Default: a Badger store in Dir/state. A store given to an
	// archive that has an index mark must hold what that archive's
	// index says: for a new one, remove Dir/index-mark.json and Open
	// fills it from the index.
	State state.Store
	// Statements, when set, is the queue of signed operator statements
	// (state.SQL.Statements: replicas share it, whichever takes a
	// statement first logs it). Default: the folder Dir/operator/pending
	// (operator_pending.go).
	Statements state.Statements
	// ExportIndex, when set, is the ordered index of the export index
	// and the access log's keys (exportindex.go; archive/sqlindex keeps
	// it in a MySQL or MariaDB table), which the caller closes after the
	// archive. Default: a Badger store.Index in Dir/search. It is derived
	// from the archive log, the stored bundles and the access log: an
	// empty one is filled from them as the indexer catches up.
	ExportIndex store.IndexStore
	// HoldWait bounds how long, with a shared chain-state store
	// (replicas), a bundle waits in all for its device's lease (another
	// replica is committing the device's bundles) before it is answered
	// held (replica.go). Default DefaultHoldWait.
	HoldWait time.Duration
	// GapWait bounds how long, within HoldWait, a bundle that comes
	// after a gap waits for its predecessor to be committed by another
	// replica before it is answered held: the predecessor may be on its
	// way to this very replica, behind it in the device's lane. Default
	// DefaultGapWait, at most HoldWait.
	GapWait time.Duration
	// ContentKeyWrap, when set, encrypts the content private keys at
	// rest (contentkey_wrap.go): new and restored keys are written
	// wrapped by it, and wrapped keys are opened with it. The caller
	// closes it after the archive.
	ContentKeyWrap ContentKeyWrapper
}

// Archive is the central receiver. Its methods are safe for concurrent
// use; bundles of one device are verified one at a time, in the order
// they are admitted, and answered in that order.
type Archive struct {
	opts Options
	// gate is the device states of the log's signed statements, nil
	// without operator keys (devices_signed.go).
	gate *deviceGate
	// pendMu serialises taking the pending folder, pendStamp is the
	// folder as last taken (operator_pending.go).
	pendMu    sync.Mutex
	pendStamp os.FileInfo
	// followMu serialises reading the log into the gate; gateRead is
	// the log size the gate has read (devices_follow.go).
	followMu     sync.Mutex
	gateRead     uint64
	followFailed bool // logged once until it reads again
	// ckReqMu serialises taking the content key requests, ckReqStamp
	// is their folder as last taken (contentkey_request.go).
	ckReqMu    sync.Mutex
	ckReqStamp os.FileInfo
	lg         *slog.Logger
	cur        atomic.Pointer[signerState] // the current key (archivekey.go)
	// content is the content keys, loaded once (contentkey.go).
	contentOnce sync.Once
	content     *contentKeys
	contentErr  error
	keyMu       sync.RWMutex // a key rotation against the receipts of a group
	objects     ObjectStore
	devices     *Devices
	log         *archiveLog
	index       *store.Journal
	quar        string
	now         func() time.Time

	qidx      *quarIndex
	alerts    alertLimiter
	devAlerts deviceAlerts   // the devices' own alerts (devicealerts.go)
	outboxes  outboxStatuses // the devices' outbox reports (outboxstatus.go)

	xi     *exportIndexer // the export index (exportindex_run.go)
	access *accessLog     // the access log (accesslog.go)
	hub    eventHub       // live events (events.go)
	// searchErr is what closing the export index and access log returned.
	searchErr error
	// markErr is what writing the index mark and closing the chain-state
	// store returned.
	markErr error
	// searchAside is where Open set a damaged export index aside.
	searchAside string

	stats struct {
		accepted, duplicates, fresh, refused, alarms, held atomic.Uint64
		quarDropped, alertsSuppressed                      atomic.Uint64
	}

	// chainStore is the devices' chain state (chainstate.go), closed
	// by Close when the archive opened it.
	chainStore    state.Store
	ownChainStore bool
	// shared: other archive processes advance chainStore (replica.go);
	// leases are the device leases held (a.mu).
	shared bool
	leases map[string]*devLease
	// receiptsHere is the newest receipt recorded by this replica per
	// device (twophase.go; a.mu).
	receiptsHere map[string]receiptHere
	// commitHook, set by tests only, runs for each bundle of a group
	// after its index event and before its chain advance (replicas:
	// before its receipt is recorded); an error fails the bundle there.
	commitHook func(digest [32]byte) error
	// advancedHook, set by tests only, runs for each bundle a replica
	// advanced (the first phase, twophase.go); an error fails the bundle
	// there, unreceipted, as a replica killed between the phases would
	// leave it.
	advancedHook func(digest [32]byte) error
	chainFresh   bool // the default store's directory was made by this Open
	// markStale: a chain-state write or a registry update failed; Close
	// leaves the index mark where it was (indexmark.go).
	markStale atomic.Bool
	// replayed counts the index events Open read (tests).
	replayed uint64

	// adm counts the admissions under way, which the export indexer
	// yields to (exportindex_yield.go).
	adm admissionGauge

	mu       sync.Mutex
	inflight map[[32]byte]*Ticket // verified, not yet durable
	// failing counts, per device, the groups between the committer's
	// stages with a failed bundle of the device (pipeline.go).
	failing map[*devState]int
	states  map[string]*devState // by device and epoch (stateOf)
	// chains is each device's chain as last stored (chainstate.go): its
	// version, and the archive checkpoint of its last receipt, whose
	// size the next receipt's consistency proof starts from (witness.go).
	chains map[string]state.Chain
	rekeys []uint64 // the log indexes of the rekey statements in the index
	// opStatements counts the signed operator statements in the index.
	opStatements uint64
	// adminsEvents counts the policy.admins events in the index.
	adminsEvents uint64
	// markLog is the log size whose entries all have index events.
	markLog uint64
	// idxAdmins are the policy admin keys the index recorded (replay).
	idxAdmins indexAdmins
	// holdMu orders device holds against the log entries of bundles;
	// devHolds are the cases holding each device (hold_device.go).
	holdMu   sync.Mutex
	devHolds deviceHolds
	// legacyEvents: tests write accept events without admins, as
	// earlier versions did.
	legacyEvents bool
	locks        map[string]*sync.Mutex

	// The committer (pipeline.go).
	queue      chan *pending
	bg         context.Context // the committer's, cancelled by Close
	stop       context.CancelFunc
	quit       chan struct{}
	commitDone chan struct{}
	// watchDone is closed when the registry watcher stopped (nil: none).
	watchDone chan struct{}
	// importDone is closed when the import request watcher stopped.
	importDone chan struct{}
	closeOnce  sync.Once
	started    bool
	qmu        sync.RWMutex // enqueue (read) against Close (write)
	closing    bool
	failed     chan struct{} // closed when the log or index journal failed (Failed)
}

// Open opens (creating) the archive in opts.Dir, reads the index events
// its last run left unread into the chain-state store (the whole index
// once, for an archive without an index mark: indexmark.go) and
// completes any log entry a crash left without its index event.
func Open(ctx context.Context, opts Options) (_ *Archive, err error) {
	if opts.Dir == "" {
		return nil, errors.New("archive: Options.Dir is empty")
	}
	if opts.Signer == nil {
		if len(opts.Key) != ed25519.PrivateKeySize {
			return nil, errors.New("archive: Options.Key is not an Ed25519 private key")
		}
		opts.Signer = opts.Key
	}
	if opts.Name == "" {
		opts.Name = DefaultName
	}
	if strings.ContainsAny(opts.Name, " \t\n+") {
		return nil, fmt.Errorf("archive: name %q has a space or '+'", opts.Name)
	}
	if opts.Retention <= 0 {
		opts.Retention = DefaultRetention
	}
	if _, ok := opts.Classes[opts.DefaultClass]; len(opts.Classes) > 0 && !ok {
		return nil, fmt.Errorf("archive: default retention class %q is not a class", opts.DefaultClass)
	}
	for c, d := range opts.Classes {
		if err := checkClass(c); err != nil || d <= 0 {
			return nil, fmt.Errorf("archive: retention class %q for %s: a name of [A-Za-z0-9._-] and a positive duration", c, d)
		}
	}
	if opts.Limits == (bundle.Limits{}) {
		opts.Limits = bundle.DefaultLimits
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	opts.Quarantine.setDefaults()
	if opts.HoldWait <= 0 {
		opts.HoldWait = DefaultHoldWait
	}
	if opts.GapWait <= 0 {
		opts.GapWait = DefaultGapWait
	}
	opts.GapWait = min(opts.GapWait, opts.HoldWait)
	a := &Archive{
		opts: opts, lg: opts.Logger,
		objects: opts.Objects, devices: opts.Devices, quar: filepath.Join(opts.Dir, "quarantine"), now: opts.Now,
		devHolds: deviceHolds{}, inflight: map[[32]byte]*Ticket{}, failing: map[*devState]int{}, states: map[string]*devState{}, chains: map[string]state.Chain{}, locks: map[string]*sync.Mutex{}, leases: map[string]*devLease{},
		receiptsHere: map[string]receiptHere{},
		queue:        make(chan *pending, queueDepth), quit: make(chan struct{}), commitDone: make(chan struct{}),
		qidx: newQuarIndex(opts.Quarantine), alerts: alertLimiter{interval: opts.Quarantine.AlertInterval},
		adm: newAdmissionGauge(),
	}
	a.bg, a.stop = context.WithCancel(context.WithoutCancel(ctx))
	if err := os.MkdirAll(a.quar, 0o750); err != nil {
		return nil, fmt.Errorf("archive: %w", err)
	}
	if err := a.qidx.load(a.quar); err != nil {
		return nil, fmt.Errorf("archive: quarantine: %w", err)
	}
	if a.objects == nil {
		fsStore, err := NewFSStore(filepath.Join(opts.Dir, "objects"))
		if err != nil {
			return nil, err
		}
		fsStore.SetClock(opts.Now)
		a.objects = fsStore
	}
	if a.devices == nil {
		if a.devices, err = OpenDevices(filepath.Join(opts.Dir, "devices.json"), opts.Logger, opts.Now); err != nil {
			return nil, err
		}
	}
	a.watchEnrollments(opts.EKRoots)
	chain, err := loadKeyChain(opts.Dir, opts.Name, opts.Signer)
	if err != nil {
		return nil, err
	}
	st, err := newSignerState(opts.Name, opts.Signer, chain)
	if err != nil {
		return nil, err
	}
	if st.retired, err = retiredKeys(opts.Dir, chain); err != nil {
		return nil, err
	}
	a.cur.Store(st)
	if a.log, err = openLog(ctx, opts, st); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			a.Close()
		}
	}()
	if a.index, err = store.Open(ctx, store.Options{Dir: filepath.Join(opts.Dir, "index"), Logger: opts.Logger.With("journal", "index")}); err != nil {
		return nil, fmt.Errorf("archive: open index: %w", err)
	}
	a.failed = make(chan struct{})
	go a.watchJournals()
	if err := a.openChainState(ctx); err != nil {
		return nil, err
	}
	if err := a.replay(ctx); err != nil {
		return nil, err
	}
	if err := a.loadDeviceHolds(ctx); err != nil {
		return nil, err
	}
	// Before the committer, which wakes the indexer: the indexer takes
	// the bundles recover completes as they are accepted.
	if err := a.openExportIndex(ctx); err != nil {
		return nil, err
	}
	if err := a.openAccessLog(ctx); err != nil {
		return nil, err
	}
	a.started = true
	go a.commitLoop()
	if err := a.recover(ctx); err != nil {
		return nil, err
	}
	if err := a.openGate(ctx); err != nil {
		return nil, err
	}

	if err := a.writeIndexMark(); err != nil {
		return nil, err
	}
	a.takeContentKeyRequests(ctx, true)
	a.watchDone = make(chan struct{})
	go a.watchRegistry(registryWatch)
	a.importDone = make(chan struct{})
	go a.watchImports(importWatch)
	return a, nil
}

// Close finishes the group being committed, fails the bundles still
// queued (ErrClosed, no answer) and closes the journals.
func (a *Archive) Close() error {
	a.closeOnce.Do(func() {
		a.qmu.Lock()
		a.closing = true
		a.qmu.Unlock()
		close(a.quit)
		if a.started {
			<-a.commitDone
		}
		if a.watchDone != nil {
			<-a.watchDone
		}
		if a.importDone != nil {
			<-a.importDone
		}
		a.stop()
		a.closeHub()
		a.searchErr = errors.Join(a.closeAccessLog(), a.closeExportIndex())
		if a.started && a.index != nil && a.log != nil && a.log.l != nil {
			a.markErr = a.writeIndexMark()
		}
		if a.ownChainStore {
			a.markErr = errors.Join(a.markErr, a.chainStore.Close())
		}
	})
	errs := []error{a.searchErr, a.markErr}
	if a.index != nil {
		errs = append(errs, a.index.Close())
	}
	if a.log != nil {
		errs = append(errs, a.log.close())
	}
	return errors.Join(errs...)
}

// watchJournals raises the alarm storage.failed when a commit of the log
// or the index fails, and closes Failed's channel. The failed journal
// refuses reads and writes from then on: no bundle is answered.
func (a *Archive) watchJournals() {
	which := "log"
	select {
	case <-a.log.Failed():
	case <-a.log.keys.Failed():
	case <-a.index.Failed():
		which = "index"
	case <-a.quit:
		return
	}
	a.alert(a.bg, Alert{Severity: SeverityAlarm, Kind: KindStorageFailed,
		Reasons: []string{fmt.Sprintf("the %s journal failed a commit: %v", which, a.Err())}})
	close(a.failed)
}

// Failed is closed when a commit of the archive's log or index journal
// failed (Err says why). The alarm storage.failed is raised first. The
// archive then answers nothing: the daemon stops with an error for its
// supervisor to restart it, and Open completes from what is on disk. A
// failed sync is never retried (docs/durability.md).
func (a *Archive) Failed() <-chan struct{} { return a.failed }

// Err is why the log or index journal failed, or nil.
func (a *Archive) Err() error {
	var errs []error
	if a.log != nil {
		errs = append(errs, a.log.Err())
	}
	if a.index != nil {
		errs = append(errs, a.index.Err())
	}
	return errors.Join(errs...)
}

// PublicKey is the archive's Ed25519 public key.
func (a *Archive) PublicKey() ed25519.PublicKey {
	return a.cur.Load().key.Public().(ed25519.PublicKey)
}

// KeyID names the key in receipts and rejections (see KeyID).
func (a *Archive) KeyID() string { return a.cur.Load().keyID }

// VerifierKey is the C2SP note verifier key of the log's checkpoints.
func (a *Archive) VerifierKey() string { return a.cur.Load().vkey }

// Devices is the device registry.
func (a *Archive) Devices() *Devices { return a.devices }

// Objects is the object store.
func (a *Archive) Objects() ObjectStore { return a.objects }

// Stats counts what the archive did since Open.
type Stats struct {
	Accepted   uint64 // bundles accepted
	Duplicates uint64 // repeats answered (with the stored receipt or a fresh one)
	// FreshReceipts counts the repeats answered with a fresh receipt
	// (repeat.go), counted in Duplicates too.
	FreshReceipts uint64
	Refused       uint64 // bundles refused (quarantined, alerted)
	Alarms        uint64 // alarms raised (forks, altered objects)
	// Held counts bundles answered held (CheckHeld): with replicas, their
	// predecessor was not committed within Options.GapWait, or its
	// device's lease not had within Options.HoldWait.
	Held uint64
	// QuarantineDropped counts quarantine entries dropped past the
	// quotas (QuarantineLimits), oldest first.
	QuarantineDropped uint64
	// AlertsSuppressed counts alerts not raised by the rate limit
	// (QuarantineLimits.AlertInterval).
	AlertsSuppressed uint64
}

// Stats returns the counters.
func (a *Archive) Stats() Stats {
	return Stats{
		Accepted: a.stats.accepted.Load(), Duplicates: a.stats.duplicates.Load(), FreshReceipts: a.stats.fresh.Load(),
		Refused: a.stats.refused.Load(), Alarms: a.stats.alarms.Load(), Held: a.stats.held.Load(),
		QuarantineDropped: a.stats.quarDropped.Load(), AlertsSuppressed: a.stats.alertsSuppressed.Load(),
	}
}

// deviceLock returns the lock serialising one device's bundles.
func (a *Archive) deviceLock(device string) *sync.Mutex {
	a.mu.Lock()
	defer a.mu.Unlock()
	l := a.locks[device]
	if l == nil {
		l = &sync.Mutex{}
		a.locks[device] = l
	}
	return l
}

func cutDevice(d string) (site, name string, ok bool) { return strings.Cut(d, "/") }
