// Package broker runs the archive's embedded MQTT broker (mochi-mqtt), so
// that one machine needs nothing installed: agents publish to it, the
// archive subscribes to it through package sync like to any broker.
//
// It keeps sessions in memory only: after a restart agents resend what
// was not receipted (their outbox is the real queue).
//
// With Options.TLS the listener is TLS only and every client must present
// a certificate from the client CA; its common name is the client's
// identity, as with the packaged Mosquitto (packaging/mosquitto): a device
// "<site>/<device>", ArchiveIdentity or MonitorIdentity. The ACL is the
// packaged one, and SUBSCRIBE is checked too: a device may write only its
// own bundles and enrollment request and read only its own receipts and
// enrollment answers; shared subscriptions are the archive's alone. A
// client's id is pinned to its identity ("<identity>|<id>"), so no client
// takes over another identity's session.
//
// Without Options.TLS it authenticates nobody (any local client may
// publish, read and take over sessions), and Start refuses any listen
// address that is not loopback.
//
// The archive itself connects through DialInternal, in process, as
// ArchiveIdentity: it needs no certificate of its own.
package broker

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
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
	// TLS, when set, makes the listener TLS only with client
	// certificates, and turns on authentication and the ACL.
	TLS *TLSFiles
	// HoldDevices binds the listener at Start but accepts no client on
	// it until OpenToDevices; the internal connection works at once. The
	// archive opens the listener when its own subscriber has subscribed:
	// a fresh broker keeps no session, so a bundle a device published
	// before that would reach no subscriber and be dropped, and the
	// device would send it again only after its resend_after.
	HoldDevices bool
	Logger      *slog.Logger
}

// TLSFiles are the PEM files of the TLS listener.
type TLSFiles struct {
	CAFile   string // the CA that issues client certificates (devices, monitor)
	CertFile string // the broker's certificate (chain)
	KeyFile  string // its private key
}

// ListenError is Start refusing a listen address: a non-loopback address
// without TLS and client certificates.
type ListenError struct {
	Listen string
}

func (e *ListenError) Error() string {
	return fmt.Sprintf("broker: listen %s: not a loopback address, and without TLS and client certificates anyone who reaches it could read bundles, publish as any device and take over sessions; configure the broker's TLS (client CA, certificate and key) or listen on 127.0.0.1", e.Listen)
}

// Broker is a running embedded broker.
type Broker struct {
	s        *mqtt.Server
	tcp      *listeners.TCP
	internal *pipeListener
	tls      bool
	once     gosync.Once
	close    error
	open     gosync.Once // serves tcp (Options.HoldDevices)
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
	var tc *tls.Config
	if opts.TLS != nil {
		var err error
		if tc, err = serverTLS(opts.TLS); err != nil {
			return nil, err
		}
	} else if !Loopback(opts.Listen) {
		return nil, &ListenError{Listen: opts.Listen}
	}
	s := mqtt.New(&mqtt.Options{InlineClient: true, Logger: opts.Logger})
	const internalID = "internal"
	var hook mqtt.Hook = new(auth.AllowHook)
	if tc != nil {
		hook = &authHook{internal: internalID, log: opts.Logger}
	}
	if err := s.AddHook(hook, nil); err != nil {
		return nil, fmt.Errorf("broker: %w", err)
	}
	tcp := listeners.NewTCP(listeners.Config{ID: "tcp", Address: opts.Listen, TLSConfig: tc})
	internal := newPipeListener()
	if err := s.AddListener(listeners.NewNet(internalID, internal)); err != nil {
		s.Close()
		return nil, fmt.Errorf("broker: %w", err)
	}
	if !opts.HoldDevices {
		if err := s.AddListener(tcp); err != nil { // binds; Serve serves it
			s.Close()
			return nil, fmt.Errorf("broker: listen %s: %w", opts.Listen, err)
		}
	}
	if err := s.Serve(); err != nil {
		s.Close()
		return nil, fmt.Errorf("broker: %w", err)
	}
	if opts.HoldDevices {
		if err := s.AddListener(tcp); err != nil { // binds; OpenToDevices serves it
			s.Close()
			return nil, fmt.Errorf("broker: listen %s: %w", opts.Listen, err)
		}
	}
	b := &Broker{s: s, tcp: tcp, internal: internal, tls: tc != nil}
	if !opts.HoldDevices {
		b.open.Do(func() {})
	}
	context.AfterFunc(ctx, func() { b.Close() })
	return b, nil
}

// OpenToDevices starts accepting clients on the listener a broker
// started with Options.HoldDevices bound; it does nothing after the first
// call, or without HoldDevices. Clients that connected before wait in
// the kernel's backlog and are served now.
func (b *Broker) OpenToDevices() {
	b.open.Do(func() { b.s.Listeners.Serve(b.tcp.ID(), b.s.EstablishConnection) })
}

// Addr is the address the broker listens on.
func (b *Broker) Addr() string { return b.tcp.Address() }

// URL is the broker's address for a client: "ssl://host:port" with TLS,
// else "tcp://host:port".
func (b *Broker) URL() string {
	if b.tls {
		return "ssl://" + b.Addr()
	}
	return "tcp://" + b.Addr()
}

// Authenticating reports whether the broker authenticates its clients
// (Options.TLS).
func (b *Broker) Authenticating() bool { return b.tls }

// DialInternal opens an in-process connection to the broker, whose
// client is ArchiveIdentity (the archive's own subscriber uses it).
func (b *Broker) DialInternal(ctx context.Context) (net.Conn, error) {
	c, err := b.internal.dial(ctx)
	if err != nil {
		return nil, fmt.Errorf("broker: internal connection: %w", err)
	}
	return c, nil
}

// Loopback reports whether the host of listen (host:port) is a loopback
// address or "localhost"; an empty host (every interface) is not.
func Loopback(listen string) bool {
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// serverTLS is the listener's TLS: the broker's certificate, TLS 1.2 or
// later, and a client certificate from the client CA required.
func serverTLS(f *TLSFiles) (*tls.Config, error) {
	if f.CAFile == "" || f.CertFile == "" || f.KeyFile == "" {
		return nil, errors.New("broker: tls: the client CA, certificate and key files are all required")
	}
	cert, err := tls.LoadX509KeyPair(f.CertFile, f.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("broker: tls: %w", err)
	}
	pem, err := os.ReadFile(f.CAFile)
	if err != nil {
		return nil, fmt.Errorf("broker: tls: client CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("broker: tls: client CA %s: no PEM certificate", f.CAFile)
	}
	return &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{cert},
		ClientCAs:    pool,
		ClientAuth:   tls.RequireAndVerifyClientCert,
	}, nil
}

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
