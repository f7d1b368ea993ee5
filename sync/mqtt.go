package sync

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	gosync "sync"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// link is one MQTT connection; lost is closed when it fails.
type link struct {
	c    mqtt.Client
	lost chan struct{}
	once gosync.Once
	err  error
}

func (l *link) fail(err error) {
	l.once.Do(func() {
		l.err = err
		close(l.lost)
	})
}

// cause returns why the link failed, or nil while it is up.
func (l *link) cause() error {
	select {
	case <-l.lost:
		return l.err
	default:
	}
	if !l.c.IsConnectionOpen() {
		l.fail(errConnClosed)
		return errConnClosed
	}
	return nil
}

// errConnClosed is the cause of a link paho reports closed before its
// connection-lost callback ran.
var errConnClosed = errors.New("sync: connection closed")

type dialConfig struct {
	broker         string
	clientID       string
	tls            *tls.Config
	clean          bool // CleanSession: one-shot clients only
	connectTimeout time.Duration
	onMessage      mqtt.MessageHandler
	manualAck      bool // onMessage acknowledges each message itself (Message.Ack)
	// custom, when set, opens the connection instead of dialling broker.
	custom func(ctx context.Context) (net.Conn, error)
}

// checkBroker validates the broker URL and the TLS settings and returns the
// TLS config to use (nil for plain TCP).
func checkBroker(broker string, tc *tls.Config) (*tls.Config, error) {
	u, err := url.Parse(broker)
	if err != nil {
		return nil, &ConfigError{Field: "Broker", Reason: err.Error()}
	}
	if u.Host == "" || u.Port() == "" {
		return nil, &ConfigError{Field: "Broker", Reason: fmt.Sprintf("%q needs host:port", broker)}
	}
	switch u.Scheme {
	case "tcp", "mqtt":
		if tc != nil {
			return nil, &ConfigError{Field: "TLS", Reason: "set, but the broker URL is " + u.Scheme + "://; use ssl://"}
		}
		return nil, nil
	case "ssl", "tls", "mqtts":
		if tc == nil {
			return &tls.Config{MinVersion: tls.VersionTLS12}, nil
		}
		if tc.InsecureSkipVerify {
			return nil, &ConfigError{Field: "TLS", Reason: "InsecureSkipVerify: server verification is always on"}
		}
		return tc.Clone(), nil
	default:
		return nil, &ConfigError{Field: "Broker", Reason: "scheme " + u.Scheme + " (want tcp:// or ssl://)"}
	}
}

// dial connects once with a persistent session (CleanSession false unless
// cfg.clean) and no automatic reconnect: the callers run their own
// backoff loop.
func dial(ctx context.Context, cfg dialConfig) (*link, error) {
	l := &link{lost: make(chan struct{})}
	o := mqtt.NewClientOptions()
	o.AddBroker(cfg.broker)
	o.SetClientID(cfg.clientID)
	o.SetCleanSession(cfg.clean)
	o.SetOrderMatters(true)
	o.SetAutoReconnect(false)
	o.SetConnectRetry(false)
	o.SetConnectTimeout(cfg.connectTimeout)
	o.SetKeepAlive(15 * time.Second)
	o.SetPingTimeout(5 * time.Second)
	// paho's Publish blocks up to WriteTimeout while a lost connection is
	// being torn down; keep that short so the loops notice and redial.
	o.SetWriteTimeout(5 * time.Second)
	if cfg.tls != nil {
		o.SetTLSConfig(cfg.tls)
	}
	o.SetDefaultPublishHandler(cfg.onMessage)
	o.SetAutoAckDisabled(cfg.manualAck)
	o.SetConnectionLostHandler(func(_ mqtt.Client, err error) { l.fail(err) })
	if cfg.custom != nil {
		o.SetCustomOpenConnectionFn(func(*url.URL, mqtt.ClientOptions) (net.Conn, error) {
			dctx, cancel := context.WithTimeout(ctx, cfg.connectTimeout)
			defer cancel()
			return cfg.custom(dctx)
		})
	}
	l.c = mqtt.NewClient(o)
	if err := waitToken(ctx, l.c.Connect(), nil, cfg.connectTimeout+time.Second); err != nil {
		l.c.Disconnect(0)
		return nil, &ConnectError{Broker: cfg.broker, Err: err}
	}
	return l, nil
}

// errTokenTimeout is returned by waitToken when the broker did not answer.
var errTokenTimeout = errors.New("sync: no answer from the broker in time")

// waitToken waits for tok, ctx, the link's failure or the timeout.
func waitToken(ctx context.Context, tok mqtt.Token, l *link, timeout time.Duration) error {
	var lost chan struct{}
	if l != nil {
		lost = l.lost
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-tok.Done():
		return tok.Error()
	case <-ctx.Done():
		return ctx.Err()
	case <-lost:
		return fmt.Errorf("sync: connection lost: %w", l.err)
	case <-t.C:
		return errTokenTimeout
	}
}
