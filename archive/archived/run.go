package archived

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	gosync "sync"
	"sync/atomic"

	"github.com/edgeseal/edgeseal/archive"
	"github.com/edgeseal/edgeseal/archive/api"
	"github.com/edgeseal/edgeseal/archive/broker"
	"github.com/edgeseal/edgeseal/archive/config"
	"github.com/edgeseal/edgeseal/internal/metrics"
	"github.com/edgeseal/edgeseal/internal/sdnotify"
	"github.com/edgeseal/edgeseal/sync"
)

// Options are what Run takes besides the config.
type Options struct {
	// Logger receives the daemon's log; nil discards it.
	Logger *slog.Logger
	// Ready, when set, is called once the archive, the broker (nil with
	// an external one) and the subscriber are up, before Run serves: for
	// tests that drive the running daemon.
	Ready func(a *archive.Archive, b *broker.Broker)
	// APIReady, when set, is called with the read API's server and
	// address once it listens (api.listen set): for tests.
	APIReady func(s *api.Server, addr net.Addr)
}

// exitProcess ends the process after a storage failure (a variable, so
// that a test can watch the exit instead).
var exitProcess = os.Exit

// ErrStorageFailed is Run's error after a failed commit of the archive's
// log or index, should exitProcess return.
var ErrStorageFailed = errors.New("log or index write failed; stopped for a restart (see the log)")

// Run runs the archive daemon of cfg until ctx is done: the archive, the
// embedded broker (unless an external one is configured) and the sync
// subscriber whose Admit is Archive.AdmitHashed; alerts go to
// edgeseal/v1/alerts; the devices' alerts (edgeseal/v1/alerts/+/+) are
// counted and kept by Archive.ReceiveDeviceAlert. An sdnotify.Notifier in ctx (sdnotify.NewContext)
// hears READY, STOPPING and the watchdog. A cancelled ctx is a clean stop
// (nil).
func Run(ctx context.Context, cfg *config.Config, o Options) (err error) {
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cfg.API.Listen != "" { // refused before anything starts
		if err := api.CheckListen(cfg.API.Listen, cfg.API.TLS()); err != nil {
			return err
		}
	}
	key, closeKey, created, err := OpenKey(cfg)
	if err != nil {
		return err
	}
	defer closeKey()
	if created {
		log.Warn("created the archive key; give its public key to the agents", "file", cfg.KeyFile, "pub", cfg.KeyFile+".pub")
	}
	var (
		sub atomic.Pointer[sync.Subscriber]
		brk *broker.Broker
	)
	mets := metrics.NewArchive()
	alert := func(ctx context.Context, al archive.Alert) {
		mets.Alert(al.Kind, al.Severity)
		payload, err := json.Marshal(al)
		if err != nil {
			return
		}
		if s := sub.Load(); s != nil {
			if err = s.Alert(ctx, payload); err == nil {
				return
			}
		}
		if brk != nil {
			err = brk.Publish(sync.AlertsTopic, payload)
		}
		if err != nil {
			log.Warn("alert not published", "kind", al.Kind, "bundle", al.BundleDigest, "err", err)
		}
	}
	brokerURL := cfg.BrokerURL()
	var dialBroker func(context.Context) (net.Conn, error)
	if cfg.MQTT.EmbeddedOn() {
		if brk, err = startEmbeddedBroker(ctx, cfg, log); err != nil {
			return err
		}
		defer brk.Close()
		brokerURL, dialBroker = brk.URL(), brk.DialInternal
	} else if cfg.MQTT.Group != "" {
		log.Warn("shared subscription: any client the broker lets subscribe to the group takes a share of the bundles; use a group only with a broker that authorizes SUBSCRIBE", "group", cfg.MQTT.Group)
	}
	objects, err := OpenObjects(ctx, cfg)
	if err != nil {
		return err
	}
	ekRoots, err := LoadEKRoots(cfg)
	if err != nil {
		return err
	}
	wrap, closeWrap, err := OpenContentKeyWrap(cfg)
	if err != nil {
		return err
	}
	defer closeWrap() // after the archive closes (deferred below)
	opts, err := withRetention(cfg, withWaits(cfg, archive.Options{
		Dir: cfg.DataDir, Signer: key, Name: cfg.Name, Retention: cfg.Retention, Objects: objects,
		Logger: log.With("component", "archive"), Alert: alert, EKRoots: ekRoots, Quarantine: quarantineLimits(cfg.Quarantine),
		ContentKeyWrap: wrap,
	}))
	if err != nil {
		return err
	}
	if opts.ExportIndex, err = openIndex(ctx, cfg); err != nil {
		return err
	}
	if opts.ExportIndex != nil {
		defer opts.ExportIndex.Close() // after the archive closes (deferred below)
	}
	var stateOpened func() error
	if opts.State, stateOpened, err = openState(ctx, cfg); err != nil {
		return err
	}
	if opts.State != nil {
		defer opts.State.Close() // after the archive closes (deferred below)
	}
	if err := shareRegistry(ctx, cfg, &opts); err != nil {
		return err
	}
	a, err := archive.Open(ctx, opts)
	if err != nil {
		return err
	}
	if err := stateOpened(); err != nil {
		a.Close()
		return err
	}
	// The content keys are opened now (unwrapped with the token when
	// content_key_wrap is set): a key that does not open stops the start
	// rather than refusing every encrypted bundle.
	if _, err := a.ContentKeyAnnouncement(); err != nil && !errors.Is(err, archive.ErrNoContentKey) {
		a.Close()
		return err
	}
	defer func() {
		if cerr := a.Close(); cerr != nil && err == nil {
			err = cerr
		}
	}()
	tlsCfg, err := mqttTLS(cfg)
	if err != nil {
		return err
	}
	frames, closeFrames, err := openFrames(ctx, cfg)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := closeFrames(); cerr != nil && err == nil {
			err = cerr
		}
	}()
	var subscribed func()
	if brk != nil {
		subscribed = brk.OpenToDevices
	}
	s, err := sync.NewSubscriber(withLanes(cfg, sync.SubscriberOptions{
		Broker: brokerURL, ClientID: cfg.MQTT.ClientID, TLS: tlsCfg, Group: cfg.MQTT.Group, Dial: dialBroker,
		Admit: admit(a, mets.ProcessError), EnrollHandler: a.ReceiveEnrollment, Logger: log, Frames: frames, Subscribed: subscribed,
		DeviceAlertHandler: func(ctx context.Context, al *sync.DeviceAlert) {
			mets.DeviceAlert(archive.DeviceAlertKind(al.Kind))
			a.ReceiveDeviceAlert(ctx, al)
		},
	}))
	if err != nil {
		return err
	}
	sub.Store(s)
	if cfg.Metrics.Listen != "" {
		stop, err := serveMetrics(ctx, cfg.Metrics.Listen, mets, a, s, frames, log.With("component", "metrics"))
		if err != nil {
			return err
		}
		defer stop()
	}
	apiSrv, apiAddr, stopAPI, err := serveAPI(ctx, cfg, a, log.With("component", "api"))
	if err != nil {
		return err
	}
	defer stopAPI()
	if o.APIReady != nil && apiSrv != nil {
		o.APIReady(apiSrv, apiAddr)
	}
	log.Info("archive ready", "data", cfg.DataDir, "objects", cfg.Objects.Backend, "broker", brokerURL, "group", cfg.MQTT.Group,
		"key", a.KeyID(), "noteKey", a.VerifierKey(), "log", a.LogSize(), "logEngine", a.LogEngine())
	if o.Ready != nil {
		o.Ready(a, brk)
	}
	notify := sdnotify.FromContext(ctx)
	if err := notify.Notify(sdnotify.Ready); err != nil {
		log.Warn("sd_notify READY", "err", err)
	}
	var subscribing atomic.Bool // for the watchdog: the subscriber loop runs
	subscribing.Store(true)
	wdCtx, stopWatchdog := context.WithCancel(context.Background())
	var watchdog gosync.WaitGroup
	watchdog.Go(func() { notify.Start(wdCtx, subscribing.Load) })
	defer func() { stopWatchdog(); watchdog.Wait() }()
	// A failed commit of the log or the index (Archive.Failed, the alarm
	// storage.failed raised) ends the process with exit status 1 for
	// systemd to restart it: the journal is never synced again
	// (docs/durability.md), and the new process completes from the disk.
	runCtx, stopRun := context.WithCancel(ctx)
	defer stopRun()
	var storageFailed atomic.Bool
	go func() {
		select {
		case <-a.Failed():
			storageFailed.Store(true)
			log.Error("ALARM archive storage failed: durability lost; exiting for a restart", "alarm", archive.KindStorageFailed, "err", a.Err())
			// At once (the alert storage.failed went out first): nothing
			// is left to answer, a commit may hang behind a Badger flush
			// retried forever, and Badger's background work would go on
			// writing to a disk that fails.
			exitProcess(1)
			stopRun()
		case <-runCtx.Done():
		}
	}()
	err = s.Start(runCtx)
	subscribing.Store(false)
	if storageFailed.Load() {
		return fmt.Errorf("archive: %w", ErrStorageFailed)
	}
	if nerr := notify.Notify(sdnotify.Stopping); nerr != nil {
		log.Warn("sd_notify STOPPING", "err", nerr)
	}
	if err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	st := a.Stats()
	log.Info("archive stopped", "log", a.LogSize(), "accepted", st.Accepted, "duplicates", st.Duplicates, "refused", st.Refused, "alarms", st.Alarms)
	return nil
}

// admit adapts Archive.AdmitHashed to sync (bundles verified in arrival
// order, made durable in groups): a refusal is an answer (the signed
// rejection is published), any other error means no reply and a later
// redelivery (counted by failed, unless the daemon is stopping).
func admit(a *archive.Archive, failed func()) sync.Admitter {
	return func(ctx context.Context, d sync.Delivery) func(context.Context) ([]byte, error) {
		t := a.AdmitHashed(ctx, d.Site, d.Device, d.Hashed)
		return func(ctx context.Context) ([]byte, error) {
			reply, err := t.Wait(ctx)
			if _, ok := errors.AsType[*archive.RejectedError](err); ok {
				return reply, nil
			}
			if err != nil && ctx.Err() == nil {
				failed()
			}
			return reply, err
		}
	}
}
