package sync

import (
	"context"
	"crypto/tls"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// ProbeOptions configure Probe.
type ProbeOptions struct {
	Broker   string      // tcp://host:port or ssl://host:port, required
	ClientID string      // required; not the agent's own (the broker would drop the agent's session)
	TLS      *tls.Config // for ssl://, as for PublisherOptions.TLS
	Timeout  time.Duration
}

// Probe connects to the broker once (TLS handshake with the configured
// certificates, MQTT CONNECT with a clean session) and disconnects: it
// answers whether a publisher with these settings could connect. Errors
// are *ConfigError (bad settings) or *ConnectError.
func Probe(ctx context.Context, o ProbeOptions) error {
	if o.ClientID == "" {
		return &ConfigError{Field: "ClientID", Reason: "required"}
	}
	tc, err := checkBroker(o.Broker, o.TLS)
	if err != nil {
		return err
	}
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Second
	}
	opts := mqtt.NewClientOptions()
	opts.AddBroker(o.Broker)
	opts.SetClientID(o.ClientID)
	opts.SetCleanSession(true)
	opts.SetAutoReconnect(false)
	opts.SetConnectRetry(false)
	opts.SetConnectTimeout(o.Timeout)
	if tc != nil {
		opts.SetTLSConfig(tc)
	}
	c := mqtt.NewClient(opts)
	if err := waitToken(ctx, c.Connect(), nil, o.Timeout+time.Second); err != nil {
		c.Disconnect(0)
		return &ConnectError{Broker: o.Broker, Err: err}
	}
	c.Disconnect(100)
	return nil
}
