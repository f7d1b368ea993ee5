package main

import (
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"log/slog"
	"os"

	"github.com/edgeseal/edgeseal/agent"
	"github.com/edgeseal/edgeseal/agent/config"
	"github.com/edgeseal/edgeseal/sync"
)

// newPublisher builds the sync publisher of the agent's outbox from the
// config's sync section: receipts journaled by the core before an outbox
// entry is deleted, refusals and the broker link reported in the core's
// status.
func newPublisher(cfg *config.Config, core *agent.Core, log *slog.Logger) (*sync.Publisher, error) {
	key, err := readEd25519Public(cfg.Sync.ArchiveKey)
	if err != nil {
		return nil, err
	}
	ring, err := agentArchiveKeys(cfg, core, key)
	if err != nil {
		return nil, err
	}
	var tc *tls.Config
	if cfg.Sync.CA != "" || cfg.Sync.Cert != "" {
		if tc, err = syncTLS(cfg.Sync); err != nil {
			return nil, err
		}
	}
	pub, err := sync.NewPublisher(sync.PublisherOptions{
		Broker: cfg.Sync.Broker, Site: cfg.Site, Device: cfg.Device, TLS: tc,
		Outbox: core, ArchiveKey: key, ArchiveKeys: ring,
		MaxMessage: int(cfg.Sync.MaxMessage), Window: cfg.Sync.Window, BytesPerSecond: int64(cfg.Sync.BytesPerSecond),
		RetryHeld:   cfg.Sync.RetryHeld,
		ResendAfter: cfg.Sync.ResendAfter,
		OnReceipts:  core.JournalReceipts,
		OnSent:      core.MarkSent,
		OnRejection: func(_ context.Context, id string, rej *sync.Rejection, _ []byte) {
			core.NoteRefusal(id, rej.BundleDigest, rej.Checks, rej.Reason) // logs it once
		},
		Logger: log,
	})
	if err != nil {
		return nil, err
	}
	broker := cfg.Sync.Broker
	core.SetBrokerLink(func() agent.BrokerLink {
		s := pub.Stats()
		return agent.BrokerLink{Broker: broker, Connected: s.Connected, Since: s.Since, LastError: s.LastError, LastErrorTime: s.LastErrorTime}
	})
	return pub, nil
}

// readEd25519Public reads a PEM (PKIX) Ed25519 public key.
func readEd25519Public(path string) (ed25519.PublicKey, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("sync: archive key: %w", err)
	}
	blk, _ := pem.Decode(data)
	if blk == nil || blk.Type != "PUBLIC KEY" {
		return nil, fmt.Errorf("sync: archive key %s: not a PEM PUBLIC KEY", path)
	}
	pub, err := x509.ParsePKIXPublicKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("sync: archive key %s: %w", path, err)
	}
	k, ok := pub.(ed25519.PublicKey)
	if !ok {
		return nil, fmt.Errorf("sync: archive key %s: %T, want Ed25519", path, pub)
	}
	return k, nil
}

// syncTLS is the client TLS of the MQTT link: the broker verified against
// the configured CA, the device's certificate when configured.
func syncTLS(s config.Sync) (*tls.Config, error) { return sync.ClientTLS(s.CA, s.Cert, s.Key) }

// The publisher reads only the bundles it sends, with the digest taken at
// seal time, and deletes the entries of receipts that came together with
// one durable step.
var _ interface {
	sync.OutboxLister
	sync.OutboxDigester
	sync.OutboxBatchDeleter
} = (*agent.Core)(nil)
