// Package broker runs the archive's embedded MQTT broker (mochi-mqtt), so
// that one machine needs nothing installed: agents publish to it, the
// archive subscribes to it through package sync like to any broker.
//
// It keeps sessions in memory only: after a restart agents resend what
// was not receipted (their outbox is the real queue). It authenticates
// nobody and listens on 127.0.0.1 by default; production uses Mosquitto
// or EMQX with TLS, client certificates and the ACL from packaging/.
package broker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	gosync "sync"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"
)

// DefaultListen is the embedded broker's default address.
const DefaultListen = "127.0.0.1:1883"

// Options configure Start.
type Options struct {
	Listen string // host:port, default DefaultListen (port 0: any free port)
	Logger *slog.Logger
}

// Broker is a running embedded broker.
type Broker struct {
	s     *mqtt.Server
	tcp   *listeners.TCP
	once  gosync.Once
	close error
}

// Start listens and serves until Close (or ctx is done).
func Start(ctx context.Context, opts Options) (*Broker, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if opts.Listen == "" {
		opts.Listen = DefaultListen
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	s := mqtt.New(&mqtt.Options{InlineClient: true, Logger: opts.Logger})
	if err := s.AddHook(new(auth.AllowHook), nil); err != nil {
		return nil, fmt.Errorf("broker: %w", err)
	}
	tcp := listeners.NewTCP(listeners.Config{ID: "tcp", Address: opts.Listen})
	if err := s.AddListener(tcp); err != nil {
		return nil, fmt.Errorf("broker: listen %s: %w", opts.Listen, err)
	}
	if err := s.Serve(); err != nil {
		s.Close()
		return nil, fmt.Errorf("broker: %w", err)
	}
	b := &Broker{s: s, tcp: tcp}
	context.AfterFunc(ctx, func() { b.Close() })
	return b, nil
}

// Addr is the address the broker listens on.
func (b *Broker) Addr() string { return b.tcp.Address() }

// URL is the broker's address for a client ("tcp://host:port").
func (b *Broker) URL() string { return "tcp://" + b.Addr() }

// Publish sends a message from the broker itself (QoS 1).
func (b *Broker) Publish(topic string, payload []byte) error {
	if err := b.s.Publish(topic, payload, false, 1); err != nil {
		return fmt.Errorf("broker: publish %s: %w", topic, err)
	}
	return nil
}

// Subscribe calls fn for every message matching filter, from the
// broker's own inline client (tests and local tools).
func (b *Broker) Subscribe(filter string, id int, fn func(topic string, payload []byte)) error {
	err := b.s.Subscribe(filter, id, func(_ *mqtt.Client, _ packets.Subscription, pk packets.Packet) {
		fn(pk.TopicName, pk.Payload)
	})
	if err != nil {
		return fmt.Errorf("broker: subscribe %s: %w", filter, err)
	}
	return nil
}

// Close stops the broker.
func (b *Broker) Close() error {
	b.once.Do(func() {
		if err := b.s.Close(); err != nil && !errors.Is(err, context.Canceled) {
			b.close = err
		}
	})
	return b.close
}
