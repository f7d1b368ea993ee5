package agentd

import (
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/edgeseal/edgeseal/agent"
	"github.com/edgeseal/edgeseal/agent/config"
	"github.com/edgeseal/edgeseal/archive"
	"github.com/edgeseal/edgeseal/bundle/archivesig"
	"github.com/edgeseal/edgeseal/internal/fsutil"
	"github.com/edgeseal/edgeseal/sync"
)

// newPublisher builds the sync publisher of the agent's outbox from the
// config's sync section: receipts journaled by the core before an outbox
// entry is deleted, refusals and the broker link reported in the core's
// status, the core's alarms published on the device's alert topic.
func newPublisher(cfg *config.Config, core *agent.Core, log *slog.Logger) (*sync.Publisher, error) {
	key, err := ReadArchiveKey(cfg.Sync.ArchiveKey)
	if err != nil {
		return nil, fmt.Errorf("sync: %w", err)
	}
	ring, err := core.ArchiveKeyring(filepath.Join(cfg.DataDir, agent.ArchiveKeysFile), ArchiveOrigin(cfg), key)
	if err != nil {
		return nil, err
	}
	var tc *tls.Config
	if cfg.Sync.CA != "" || cfg.Sync.Cert != "" {
		if tc, err = SyncTLS(cfg.Sync); err != nil {
			return nil, err
		}
	}
	pub, err := sync.NewPublisher(sync.PublisherOptions{
		Broker: cfg.Sync.Broker, Site: cfg.Site, Device: cfg.Device, TLS: tc,
		Outbox: core, ArchiveKey: key, ArchiveKeys: ring,
		MaxMessage: int(cfg.Sync.MaxMessage), Window: cfg.Sync.Window, BytesPerSecond: int64(cfg.Sync.BytesPerSecond),
		RetryHeld:   cfg.Sync.RetryHeld,
		ResendAfter: cfg.Sync.ResendAfter,
		OnParsedReceipts: func(ctx context.Context, ids []string, receipts []archivesig.ParsedReceipt) error {
			if err := core.JournalParsedReceipts(ctx, ids, receipts); err != nil {
				return err
			}
			rs := make([]*archivesig.Receipt, len(receipts))
			for i, r := range receipts {
				rs[i] = r.Receipt
			}
			learnParsedContentKeys(ctx, core, ring, rs, log)
			return nil
		},
		OnSent: core.MarkSent,
		OnRejection: func(_ context.Context, id string, rej *sync.Rejection, _ []byte) {
			core.NoteRefusal(id, rej.BundleDigest, rej.Checks, rej.Reason) // logs it once
		},
		Logger: log,
	})
	if err != nil {
		return nil, err
	}
	core.SetAlarmSink(alarmSink(cfg, pub, log))
	broker := cfg.Sync.Broker
	core.SetBrokerLink(func() agent.BrokerLink {
		s := pub.Stats()
		return agent.BrokerLink{Broker: broker, Connected: s.Connected, Since: s.Since, LastError: s.LastError, LastErrorTime: s.LastErrorTime}
	})
	return pub, nil
}

// alarmSink publishes the core's alarms on the device's alert topic
// through pub (queued, never blocking; see sync.Publisher.Alert).
func alarmSink(cfg *config.Config, pub *sync.Publisher, log *slog.Logger) agent.AlarmSink {
	return func(a agent.Alarm) {
		if err := pub.Alert(sync.NewDeviceAlert(cfg.Site, cfg.Device, a.Kind, a.Time, a.Seq, a.Detail)); err != nil {
			log.Warn("alarm not queued for MQTT", "kind", a.Kind, "err", err)
		}
	}
}

// The publisher reads only the bundles it sends, with the digest taken at
// seal time, and deletes the entries of receipts that came together with
// one durable step.
var _ interface {
	sync.OutboxLister
	sync.OutboxDigester
	sync.OutboxBatchDeleter
} = (*agent.Core)(nil)

// ReadArchiveKey reads an archive's Ed25519 public key (PEM PUBLIC KEY,
// PKIX), as sync.archive_key names it; it must be a regular file (a FIFO
// is refused, not waited on). Errors say "archive key" and name path;
// callers add their context (the config key or the flag).
func ReadArchiveKey(path string) (ed25519.PublicKey, error) {
	data, err := fsutil.ReadRegular(path, MaxArchiveKeyFile)
	if err != nil {
		return nil, fmt.Errorf("archive key: %w", err) // the error names path
	}
	blk, _ := pem.Decode(data)
	if blk == nil || blk.Type != "PUBLIC KEY" {
		return nil, fmt.Errorf("archive key %s: not a PEM PUBLIC KEY", path)
	}
	pub, err := x509.ParsePKIXPublicKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("archive key %s: %w", path, err)
	}
	k, ok := pub.(ed25519.PublicKey)
	if !ok {
		return nil, fmt.Errorf("archive key %s: %T, want Ed25519", path, pub)
	}
	return k, nil
}

// MaxArchiveKeyFile bounds an archive key file (a PEM key is ~110 bytes).
const MaxArchiveKeyFile = 64 << 10

// SyncTLS is the client TLS of the MQTT link: the broker verified against
// the configured CA, the device's certificate when configured.
func SyncTLS(s config.Sync) (*tls.Config, error) { return sync.ClientTLS(s.CA, s.Cert, s.Key) }

// ArchiveOrigin is sync.archive_origin, default archive.DefaultName.
func ArchiveOrigin(cfg *config.Config) string {
	if cfg.Sync.ArchiveOrigin != "" {
		return cfg.Sync.ArchiveOrigin
	}
	return archive.DefaultName
}

// ImportArchiveKeys is the agent's keyring of the archive's keys for
// `bundles import-receipts` (the agent stopped): the configured
// sync.archive_key (root) and the rotations learned since, kept in
// <data_dir>/archive-keys.json; rotations learned from the imported
// replies are journaled and kept as the running agent does.
func ImportArchiveKeys(cfg *config.Config, rj *agent.ReceiptJournal, root ed25519.PublicKey) (*agent.ArchiveKeyring, error) {
	return rj.ArchiveKeyring(filepath.Join(cfg.DataDir, agent.ArchiveKeysFile), ArchiveOrigin(cfg), root)
}

// CurrentArchiveKey is the newest archive key the agent learned from
// root (<data_dir>/archive-keys.json), or root: enrollment answers carry
// no key chain and are signed by the archive's current key.
func CurrentArchiveKey(cfg *config.Config, root ed25519.PublicKey) (ed25519.PublicKey, error) {
	keys, err := learnedArchiveKeys(cfg, root)
	if err != nil {
		return nil, err
	}
	if _, cur := keys.Current(); cur != nil {
		return cur, nil
	}
	return root, nil
}

// learnedArchiveKeys is root and the rotations the agent learned from it
// (<data_dir>/archive-keys.json).
func learnedArchiveKeys(cfg *config.Config, root ed25519.PublicKey) (*archivesig.ArchiveKeys, error) {
	keys := archivesig.NewArchiveKeys(ArchiveOrigin(cfg), root)
	b, err := os.ReadFile(filepath.Join(cfg.DataDir, agent.ArchiveKeysFile))
	if errors.Is(err, fs.ErrNotExist) {
		return keys, nil
	}
	if err != nil {
		return nil, fmt.Errorf("archive keys: %w", err)
	}
	f, err := archivesig.ParseKeyChainFile(b)
	if err != nil {
		return nil, fmt.Errorf("archive keys: %w", err)
	}
	// What does not link to root (the configured key changed) is left out,
	// as the running agent does.
	_, _ = keys.LearnChain(f.Announcements)
	return keys, nil
}
