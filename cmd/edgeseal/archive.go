package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	gosync "sync"
	"sync/atomic"
	"time"

	"github.com/edgeseal/edgeseal/archive"
	"github.com/edgeseal/edgeseal/archive/broker"
	"github.com/edgeseal/edgeseal/archive/config"
	"github.com/edgeseal/edgeseal/archive/keystore"
	"github.com/edgeseal/edgeseal/internal/fsutil"
	"github.com/edgeseal/edgeseal/internal/metrics"
	"github.com/edgeseal/edgeseal/internal/sdnotify"
	"github.com/edgeseal/edgeseal/sync"
)

// defaultArchiveConfig is where the archive commands look without --config.
const defaultArchiveConfig = "/etc/edgeseal/archive.yaml"

// cmdArchive dispatches `edgeseal archive ...`: the daemon, or one of the
// operator commands.
func cmdArchive(ctx context.Context, args []string, stdout io.Writer, log *slog.Logger) error {
	if len(args) > 0 {
		switch args[0] {
		case "devices":
			if len(args) > 1 && args[1] == "rekey" {
				return cmdArchiveRekey(ctx, args[2:], stdout, log)
			}
			return cmdArchiveDevices(ctx, args[1:], stdout, log)
		case "enroll-file":
			return cmdArchiveEnrollFile(ctx, args[1:], stdout, log)
		case "import":
			return cmdArchiveImport(ctx, args[1:], stdout, log)
		case "key":
			return cmdArchiveKey(ctx, args[1:], stdout, log)
		}
	}
	fs := flag.NewFlagSet("archive", flag.ContinueOnError)
	cfgPath := fs.String("config", "", "the archive's YAML config file (required)")
	if pos, err := parseInterleaved(fs, args); err != nil {
		return err
	} else if len(pos) > 0 {
		return usageErr("archive: unexpected argument %q", pos[0])
	}
	if *cfgPath == "" {
		return usageErr("archive: --config is required")
	}
	cfg, err := config.Load(*cfgPath)
	if err != nil {
		return err
	}
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.Log.Level)) // validated by Load
	log = daemonLogger(cfg.Log.Format, level, os.Getenv)
	return runArchive(sdnotify.NewContext(ctx, sdnotify.New(os.Getenv, log.With("component", "sdnotify"))), cfg, log, nil)
}

// archiveHooks let tests see the running daemon.
type archiveHooks struct {
	ready func(a *archive.Archive, b *broker.Broker)
}

// runArchive runs the daemon until ctx is done: the archive, the embedded
// broker (unless an external one is configured) and the sync subscriber
// whose Admit is Archive.Admit; alerts go to edgeseal/v1/alerts.
func runArchive(ctx context.Context, cfg *config.Config, log *slog.Logger, hooks *archiveHooks) (err error) {
	key, closeKey, created, err := openArchiveKey(cfg)
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
	objects, err := openObjects(ctx, cfg)
	if err != nil {
		return err
	}
	ekRoots, err := loadEKRoots(cfg)
	if err != nil {
		return err
	}
	a, err := archive.Open(ctx, archive.Options{
		Dir: cfg.DataDir, Signer: key, Name: cfg.Name, Retention: cfg.Retention, Objects: objects,
		Logger: log.With("component", "archive"), Alert: alert, EKRoots: ekRoots, Quarantine: quarantineLimits(cfg.Quarantine),
	})
	if err != nil {
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
	s, err := sync.NewSubscriber(sync.SubscriberOptions{
		Broker: brokerURL, ClientID: cfg.MQTT.ClientID, TLS: tlsCfg, Group: cfg.MQTT.Group, Dial: dialBroker,
		Admit: archiveAdmit(a, mets.ProcessError), EnrollHandler: a.ReceiveEnrollment, Logger: log,
	})
	if err != nil {
		return err
	}
	sub.Store(s)
	if cfg.Metrics.Listen != "" {
		stop, err := serveArchiveMetrics(ctx, cfg.Metrics.Listen, mets, a, s, log.With("component", "metrics"))
		if err != nil {
			return err
		}
		defer stop()
	}
	log.Info("archive ready", "data", cfg.DataDir, "objects", cfg.Objects.Backend, "broker", brokerURL, "group", cfg.MQTT.Group,
		"key", a.KeyID(), "noteKey", a.VerifierKey(), "log", a.LogSize())
	if hooks != nil && hooks.ready != nil {
		hooks.ready(a, brk)
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
	err = s.Start(ctx)
	subscribing.Store(false)
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

// archiveAdmit adapts Archive.AdmitHashed to sync (bundles verified in arrival
// order, made durable in groups): a refusal is an answer (the signed
// rejection is published), any other error means no reply and a later
// redelivery (counted by failed, unless the daemon is stopping).
func archiveAdmit(a *archive.Archive, failed func()) sync.Admitter {
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

// loadOrCreateArchiveKey reads the archive's Ed25519 key (PKCS#8 PEM), or
// creates it (0600, written to a temp file, fsynced and linked into
// place so a concurrent start never replaces it) with its public key
// beside it as FILE.pub.
func loadOrCreateArchiveKey(path string) (ed25519.PrivateKey, bool, error) {
	if err := keystore.CheckFile(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, false, fmt.Errorf("archive key: %w", err)
	}
	data, err := os.ReadFile(path)
	if err == nil {
		k, err := keystore.ParseKey(data)
		if err != nil {
			return nil, false, fmt.Errorf("archive key %s: %w", path, err)
		}
		return k, false, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, false, fmt.Errorf("archive key: %w", err)
	}
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, false, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil, false, err
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, false, fmt.Errorf("archive key: %w", err)
	}
	tmp := path + ".tmp-" + fmt.Sprint(time.Now().UnixNano())
	if err := fsutil.WriteFileAtomic(tmp, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		return nil, false, err
	}
	defer os.Remove(tmp)
	if err := os.Link(tmp, path); err != nil {
		if errors.Is(err, fs.ErrExist) { // another start won: use its key
			return loadOrCreateArchiveKey(path)
		}
		return nil, false, fmt.Errorf("archive key: %w", err)
	}
	if err := fsutil.SyncDir(dir); err != nil {
		return nil, false, err
	}
	pub, err := x509.MarshalPKIXPublicKey(k.Public())
	if err != nil {
		return nil, false, err
	}
	if err := fsutil.WriteFileAtomic(path+".pub", pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}), 0o644); err != nil {
		return nil, false, err
	}
	return k, true, nil
}
