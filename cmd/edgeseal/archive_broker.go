package main

import (
	"context"
	"log/slog"

	"github.com/edgeseal/edgeseal/archive/broker"
	"github.com/edgeseal/edgeseal/archive/config"
)

// startEmbeddedBroker starts the archive's embedded MQTT broker as
// mqtt.embedded says: with TLS, client certificates and the ACL when
// mqtt.embedded.tls is set, else unauthenticated on a loopback address.
func startEmbeddedBroker(ctx context.Context, cfg *config.Config, log *slog.Logger) (*broker.Broker, error) {
	opts := broker.Options{Listen: cfg.MQTT.Embedded.Listen, Logger: log.With("component", "broker")}
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
