package archived

import (
	"context"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/edgeseal/edgeseal/archive"
	"github.com/edgeseal/edgeseal/archive/broker"
	"github.com/edgeseal/edgeseal/archive/config"
	"github.com/edgeseal/edgeseal/archive/s3store"
	"github.com/edgeseal/edgeseal/internal/fsutil"
)

// Open opens the archive of a stopped daemon for an operator command
// (import, devices rekey, key rotate): the object store the config
// chooses (OpenObjects) and the archive's journals under data_dir, signed
// by signer (OpenKey), its content keys wrapped by wrap
// (OpenContentKeyWrap; nil: not wrapped). While the daemon runs, the
// journals are locked and Open fails. The chain-state store is the one
// archive_state chooses, the export index archive_index's; closeAll
// closes the archive, then them.
func Open(ctx context.Context, cfg *config.Config, signer crypto.Signer, wrap archive.ContentKeyWrapper, log *slog.Logger) (a *archive.Archive, closeAll func() error, err error) {
	objects, err := OpenObjects(ctx, cfg)
	if err != nil {
		return nil, nil, err
	}
	opts, err := withRetention(cfg, withWaits(cfg, archive.Options{Dir: cfg.DataDir, Signer: signer, Name: cfg.Name, Retention: cfg.Retention, Objects: objects, Logger: log, ContentKeyWrap: wrap}))
	if err != nil {
		return nil, nil, err
	}
	if opts.ExportIndex, err = openIndex(ctx, cfg); err != nil {
		return nil, nil, err
	}
	var stateOpened func() error
	if opts.State, stateOpened, err = openState(ctx, cfg); err != nil {
		if opts.ExportIndex != nil {
			_ = opts.ExportIndex.Close()
		}
		return nil, nil, err
	}
	closeState := func() error {
		var errs []error
		if opts.State != nil {
			errs = append(errs, opts.State.Close())
		}
		if opts.ExportIndex != nil {
			errs = append(errs, opts.ExportIndex.Close())
		}
		return errors.Join(errs...)
	}
	if err := shareRegistry(ctx, cfg, &opts); err != nil {
		_ = closeState()
		return nil, nil, err
	}
	if a, err = archive.Open(ctx, opts); err != nil {
		_ = closeState()
		return nil, nil, err
	}
	if err := stateOpened(); err != nil {
		_ = a.Close()
		_ = closeState()
		return nil, nil, err
	}
	return a, func() error { return errors.Join(a.Close(), closeState()) }, nil
}

// OpenObjects opens the write-once object store the config chooses: the
// filesystem under <data_dir>/objects, or an S3 bucket with Object Lock
// (checked before the archive starts).
func OpenObjects(ctx context.Context, cfg *config.Config) (archive.ObjectStore, error) {
	switch cfg.Objects.Backend {
	case config.BackendFS:
		return archive.NewFSStore(filepath.Join(cfg.DataDir, "objects"))
	case config.BackendS3:
	default:
		return nil, fmt.Errorf("objects: unknown backend %q", cfg.Objects.Backend)
	}
	s := cfg.Objects.S3
	creds, err := s3store.LoadCredentials(s.CredentialsFile, os.Getenv)
	if err != nil {
		return nil, err
	}
	var tc *tls.Config
	if s.TLS.CAFile != "" {
		pemData, err := os.ReadFile(s.TLS.CAFile)
		if err != nil {
			return nil, fmt.Errorf("objects: s3 tls: %w", err)
		}
		tc = &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: x509.NewCertPool()}
		if !tc.RootCAs.AppendCertsFromPEM(pemData) {
			return nil, fmt.Errorf("objects: s3 tls: no certificate in %s", s.TLS.CAFile)
		}
	}
	return s3store.New(ctx, s3store.Options{
		Endpoint: s.Endpoint, AllowHTTP: s.InsecureHTTP, TLS: tc,
		Bucket: s.Bucket, Region: s.Region, Prefix: s.Prefix, VirtualHosted: s.VirtualHosted,
		Credentials: creds, Retention: s.Retention(),
	})
}

// OpenObjectsReadOnly opens the config's object store for reading,
// creating and locking nothing (a running daemon's store).
func OpenObjectsReadOnly(ctx context.Context, cfg *config.Config) (archive.ObjectStore, error) {
	if cfg.Objects.Backend == config.BackendFS {
		return archive.OpenFSStoreReadOnly(filepath.Join(cfg.DataDir, "objects"))
	}
	return OpenObjects(ctx, cfg)
}

// LoadEKRoots reads the EK CA bundle of enroll.ek_ca; nil when not set.
func LoadEKRoots(cfg *config.Config) (*x509.CertPool, error) {
	if cfg.Enroll.EKCA == "" {
		return nil, nil
	}
	data, err := fsutil.ReadLimited(cfg.Enroll.EKCA, archive.MaxEKCAFile)
	if err != nil {
		return nil, fmt.Errorf("enroll.ek_ca: %w", err)
	}
	roots, err := archive.ParseEKRoots(data)
	if err != nil {
		return nil, fmt.Errorf("enroll.ek_ca %s: %w", cfg.Enroll.EKCA, err)
	}
	return roots, nil
}

// quarantineLimits are the config's quarantine bounds (alert_interval 0:
// every alert is raised).
func quarantineLimits(q config.Quarantine) archive.QuarantineLimits {
	l := archive.QuarantineLimits{MaxEntries: q.MaxEntries, MaxBytes: q.MaxBytes, DeviceEntries: q.DeviceEntries,
		DeviceBytes: q.DeviceBytes, AlertInterval: q.AlertInterval}
	if l.AlertInterval == 0 {
		l.AlertInterval = -1
	}
	return l
}

// startEmbeddedBroker starts the archive's embedded MQTT broker as
// mqtt.embedded says: with TLS, client certificates and the ACL when
// mqtt.embedded.tls is set, else unauthenticated on a loopback address.
func startEmbeddedBroker(ctx context.Context, cfg *config.Config, log *slog.Logger) (*broker.Broker, error) {
	// Devices are let in once the archive's subscriber has subscribed
	// (Run: SubscriberOptions.Subscribed).
	opts := broker.Options{Listen: cfg.MQTT.Embedded.Listen, HoldDevices: true, Logger: log.With("component", "broker")}
	if et := cfg.MQTT.Embedded.TLS; et != (config.TLS{}) {
		opts.TLS = &broker.TLSFiles{CAFile: et.CAFile, CertFile: et.CertFile, KeyFile: et.KeyFile}
	}
	brk, err := broker.Start(ctx, opts)
	if err != nil {
		return nil, err
	}
	if brk.Authenticating() {
		log.Info("embedded MQTT broker: TLS, client certificates and the ACL", "listen", brk.Addr())
	} else {
		log.Warn("embedded MQTT broker without authentication (loopback only; set mqtt.embedded.tls for client certificates and the ACL)", "listen", brk.Addr())
	}
	return brk, nil
}

// mqttTLS builds the client TLS config for an ssl:// broker: the system
// roots or the configured CA, and the archive's client certificate.
func mqttTLS(cfg *config.Config) (*tls.Config, error) {
	t := cfg.MQTT.TLS
	if t == (config.TLS{}) {
		return nil, nil
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if t.CAFile != "" {
		pemData, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("mqtt tls: %w", err)
		}
		tc.RootCAs = x509.NewCertPool()
		if !tc.RootCAs.AppendCertsFromPEM(pemData) {
			return nil, fmt.Errorf("mqtt tls: no certificate in %s", t.CAFile)
		}
	}
	if t.CertFile != "" {
		c, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("mqtt tls: %w", err)
		}
		tc.Certificates = []tls.Certificate{c}
	}
	return tc, nil
}
