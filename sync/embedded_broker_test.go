package sync

import (
	"context"
	"crypto/tls"
	"net"
	"net/url"
	gosync "sync"
	"sync/atomic"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/edgeseal/edgeseal/archive/broker"
	"github.com/edgeseal/edgeseal/sync/mqtttest"
)

// The archive's embedded broker (archive/broker) with TLS and client
// certificates, driven by a real paho client: who may connect, the ACL
// (SUBSCRIBE included) and client ids pinned to the identity.

// startAuthBroker starts the embedded broker with TLS on 127.0.0.1.
func startAuthBroker(t *testing.T, pki *mqtttest.PKI) *broker.Broker {
	t.Helper()
	b, err := broker.Start(t.Context(), broker.Options{Listen: "127.0.0.1:0",
		TLS: &broker.TLSFiles{CAFile: pki.CAFile, CertFile: pki.ServerCert, KeyFile: pki.ServerKey}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// pahoClient is a raw paho connection that records what it receives and
// whether it was disconnected.
type pahoClient struct {
	c    mqtt.Client
	lost chan struct{}
	once gosync.Once
	mu   gosync.Mutex
	got  []string // topics received
}

// connectPaho connects to url with client id id (persistent session);
// tc nil: plain TCP; dial non-nil: that connection instead.
func connectPaho(t *testing.T, brokerURL, id string, tc *tls.Config, dial func(context.Context) (net.Conn, error)) (*pahoClient, error) {
	t.Helper()
	pc := &pahoClient{lost: make(chan struct{})}
	o := mqtt.NewClientOptions().AddBroker(brokerURL).SetClientID(id).SetCleanSession(false).
		SetAutoReconnect(false).SetConnectRetry(false).SetConnectTimeout(10 * time.Second).SetOrderMatters(false)
	if tc != nil {
		o.SetTLSConfig(tc)
	}
	if dial != nil {
		o.SetCustomOpenConnectionFn(func(*url.URL, mqtt.ClientOptions) (net.Conn, error) { return dial(t.Context()) })
	}
	o.SetConnectionLostHandler(func(mqtt.Client, error) { pc.once.Do(func() { close(pc.lost) }) })
	o.SetDefaultPublishHandler(func(_ mqtt.Client, m mqtt.Message) {
		pc.mu.Lock()
		pc.got = append(pc.got, m.Topic())
		pc.mu.Unlock()
	})
	pc.c = mqtt.NewClient(o)
	tok := pc.c.Connect()
	if !tok.WaitTimeout(20 * time.Second) {
		return nil, errTokenTimeout
	}
	if err := tok.Error(); err != nil {
		return nil, err
	}
	t.Cleanup(func() { pc.c.Disconnect(0) })
	return pc, nil
}

func mustConnect(t *testing.T, brokerURL, id string, tc *tls.Config, dial func(context.Context) (net.Conn, error)) *pahoClient {
	t.Helper()
	pc, err := connectPaho(t, brokerURL, id, tc, dial)
	if err != nil {
		t.Fatalf("connect %s: %v", id, err)
	}
	return pc
}

// subscribe returns the SUBACK code for filter (0x80: refused).
func (pc *pahoClient) subscribe(t *testing.T, filter string) byte {
	t.Helper()
	tok := pc.c.Subscribe(filter, 1, nil)
	if !tok.WaitTimeout(20 * time.Second) {
		t.Fatalf("subscribe %s: no SUBACK", filter)
	}
	res := tok.(*mqtt.SubscribeToken).Result() // keyed by the filter without "$share/<group>/"
	if len(res) != 1 {
		t.Fatalf("subscribe %s: results %v (%v)", filter, res, tok.Error())
	}
	for _, code := range res {
		return code
	}
	return 0
}

func (pc *pahoClient) isLost() bool {
	select {
	case <-pc.lost:
		return true
	default:
		return false
	}
}

func (pc *pahoClient) topics() []string {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	return append([]string(nil), pc.got...)
}

// waitTopic waits until pc received a message on topic.
func (pc *pahoClient) waitTopic(t *testing.T, topic string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		for _, got := range pc.topics() {
			if got == topic {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("nothing received on %s (got %v)", topic, pc.topics())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestEmbeddedBrokerRefusesAnonymous: with TLS configured, a client
// without a certificate, with a certificate from another CA, with a
// certificate whose name the ACL does not know, or in plain TCP does not
// get a session.
func TestEmbeddedBrokerRefusesAnonymous(t *testing.T) {
	pki := mqtttest.NewPKI(t)
	b := startAuthBroker(t, pki)
	if b.URL()[:6] != "ssl://" || !b.Authenticating() {
		t.Fatalf("URL %s", b.URL())
	}
	if _, err := connectPaho(t, b.URL(), "anon", pki.ClientTLS(false), nil); err == nil {
		t.Fatal("a client without a certificate connected")
	}
	other := mqtttest.NewPKI(t)
	foreign := other.Issue(t, "site1/devA")
	if _, err := connectPaho(t, b.URL(), "foreign", &tls.Config{RootCAs: pki.Pool, Certificates: []tls.Certificate{foreign.Cert}, MinVersion: tls.VersionTLS12}, nil); err == nil {
		t.Fatal("a certificate from another CA connected")
	}
	if _, err := connectPaho(t, b.URL(), "noname", pki.ClientTLS(true), nil); err == nil { // CN edgeseal-site-device: no "/"
		t.Fatal("a certificate with a name the ACL does not know connected")
	}
	if _, err := connectPaho(t, "tcp://"+b.Addr(), "plain", nil, nil); err == nil {
		t.Fatal("a plain TCP client connected to the TLS listener")
	}
	// The control: a device certificate connects.
	mustConnect(t, b.URL(), "edgeseal-site1-devA", pki.TLS(pki.Issue(t, "site1/devA")), nil)
}

// TestEmbeddedBrokerACL: device A may subscribe to its own receipts and
// publish its own bundles and alerts, and nothing of device B's or the
// archive's: not B's receipts, not the bundles or alerts of all devices
// (not even its own alerts: it only writes them), not the archive's
// shared group; a PUBLISH on B's bundles, enrollment or alert topic, or a
// forged receipt or archive alert, never reaches anyone (the broker
// disconnects A). The archive (DialInternal) gets A's own bundles and
// alerts.
func TestEmbeddedBrokerACL(t *testing.T) {
	pki := mqtttest.NewPKI(t)
	b := startAuthBroker(t, pki)
	devA, devB := pki.Issue(t, "site1/devA"), pki.Issue(t, "site1/devB")

	arch := mustConnect(t, b.URL(), "edgeseal-archive", nil, b.DialInternal)
	for _, f := range []string{SharedBundlesFilter("archive"), SharedEnrollFilter("archive"), BundlesFilter, DeviceAlertsFilter} {
		if code := arch.subscribe(t, f); code > 1 {
			t.Fatalf("the archive may not subscribe to %s: %#x", f, code)
		}
	}
	pb := mustConnect(t, b.URL(), "edgeseal-site1-devB", pki.TLS(devB), nil)
	if code := pb.subscribe(t, ReceiptsTopic("site1", "devB")); code > 1 {
		t.Fatalf("device B may not subscribe to its receipts: %#x", code)
	}

	pa := mustConnect(t, b.URL(), "edgeseal-site1-devA", pki.TLS(devA), nil)
	for _, f := range []string{
		ReceiptsTopic("site1", "devB"), EnrollReplyTopic("site1", "devB"),
		SharedBundlesFilter("archive"), SharedEnrollFilter("archive"), "$share/mine/" + BundlesFilter,
		BundlesFilter, EnrollFilter, BundlesTopic("site1", "devB"), "edgeseal/v1/#", "#", "edgeseal/v1/site1/+/receipts",
		AlertsTopic, DeviceAlertsFilter, DeviceAlertsTopic("site1", "devB"), DeviceAlertsTopic("site1", "devA"),
	} {
		if code := pa.subscribe(t, f); code != 0x80 {
			t.Errorf("device A subscribed to %s (SUBACK %#x)", f, code)
		}
	}
	if code := pa.subscribe(t, ReceiptsTopic("site1", "devA")); code > 1 {
		t.Fatalf("device A may not subscribe to its own receipts: %#x", code)
	}
	if pa.isLost() {
		t.Fatal("device A was disconnected for subscribing")
	}

	// Forbidden publications: each disconnects A, nobody receives one.
	for _, topic := range []string{BundlesTopic("site1", "devB"), EnrollTopic("site1", "devB"), ReceiptsTopic("site1", "devB"), AlertsTopic, DeviceAlertsTopic("site1", "devB")} {
		pa := mustConnect(t, b.URL(), "edgeseal-site1-devA", pki.TLS(devA), nil)
		tok := pa.c.Publish(topic, 1, false, []byte("forged"))
		tok.WaitTimeout(5 * time.Second)
		select {
		case <-pa.lost:
		case <-time.After(20 * time.Second):
			t.Fatalf("device A's PUBLISH on %s was not refused", topic)
		}
	}
	// Barrier: A's own bundle, published after the forged ones, arrives;
	// had any forged message been forwarded, it would have arrived first.
	pa = mustConnect(t, b.URL(), "edgeseal-site1-devA", pki.TLS(devA), nil)
	if tok := pa.c.Publish(BundlesTopic("site1", "devA"), 1, false, []byte("own")); !tok.WaitTimeout(20*time.Second) || tok.Error() != nil {
		t.Fatalf("device A's own bundle: %v", tok.Error())
	}
	arch.waitTopic(t, BundlesTopic("site1", "devA"))
	// A's own alert reaches the archive.
	if tok := pa.c.Publish(DeviceAlertsTopic("site1", "devA"), 1, false, []byte("own alert")); !tok.WaitTimeout(20*time.Second) || tok.Error() != nil {
		t.Fatalf("device A's own alert: %v", tok.Error())
	}
	arch.waitTopic(t, DeviceAlertsTopic("site1", "devA"))
	time.Sleep(300 * time.Millisecond)
	for _, got := range arch.topics() {
		if got != BundlesTopic("site1", "devA") && got != DeviceAlertsTopic("site1", "devA") {
			t.Fatalf("the archive received %s", got)
		}
	}
	if got := pb.topics(); len(got) != 0 {
		t.Fatalf("device B received %v", got)
	}
	if pa.isLost() || arch.isLost() || pb.isLost() {
		t.Fatal("a permitted client was disconnected")
	}
}

// TestEmbeddedBrokerClientIDTakeover: device A connecting with device B's
// client id, or with the archive's, does not take over their sessions:
// both stay connected and keep receiving.
func TestEmbeddedBrokerClientIDTakeover(t *testing.T) {
	pki := mqtttest.NewPKI(t)
	b := startAuthBroker(t, pki)
	devA, devB := pki.Issue(t, "site1/devA"), pki.Issue(t, "site1/devB")
	arch := mustConnect(t, b.URL(), "edgeseal-archive", nil, b.DialInternal)
	if code := arch.subscribe(t, BundlesFilter); code > 1 {
		t.Fatalf("archive subscribe: %#x", code)
	}
	pb := mustConnect(t, b.URL(), "edgeseal-site1-devB", pki.TLS(devB), nil)
	if code := pb.subscribe(t, ReceiptsTopic("site1", "devB")); code > 1 {
		t.Fatalf("device B subscribe: %#x", code)
	}
	thiefB := mustConnect(t, b.URL(), "edgeseal-site1-devB", pki.TLS(devA), nil)
	thiefArch := mustConnect(t, b.URL(), "edgeseal-archive", pki.TLS(devA), nil)
	time.Sleep(300 * time.Millisecond)
	if pb.isLost() || arch.isLost() {
		t.Fatalf("session taken over: device B lost %v, archive lost %v", pb.isLost(), arch.isLost())
	}
	// Both still receive what is theirs, the impostors nothing.
	if err := b.Publish(ReceiptsTopic("site1", "devB"), []byte("receipt")); err != nil {
		t.Fatal(err)
	}
	pb.waitTopic(t, ReceiptsTopic("site1", "devB"))
	if tok := pb.c.Publish(BundlesTopic("site1", "devB"), 1, false, []byte("bundle")); !tok.WaitTimeout(20*time.Second) || tok.Error() != nil {
		t.Fatalf("device B's bundle: %v", tok.Error())
	}
	arch.waitTopic(t, BundlesTopic("site1", "devB"))
	if got := append(thiefB.topics(), thiefArch.topics()...); len(got) != 0 {
		t.Fatalf("the impostors received %v", got)
	}
}

// TestEmbeddedBrokerHoldsDevices: a broker started with HoldDevices
// binds its listener but lets no device in until the archive's own
// subscriber (on the internal connection) has subscribed, so that the
// first message a device publishes after a restart reaches it instead of
// being dropped by a broker with no session and no subscriber.
func TestEmbeddedBrokerHoldsDevices(t *testing.T) {
	b, err := broker.Start(t.Context(), broker.Options{Listen: "127.0.0.1:0", HoldDevices: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	o := mqtt.NewClientOptions().AddBroker(b.URL()).SetClientID("edgeseal-site1-devA").SetCleanSession(true).
		SetAutoReconnect(false).SetConnectRetry(false).SetConnectTimeout(20 * time.Second)
	dev := mqtt.NewClient(o)
	connected := dev.Connect()
	if connected.WaitTimeout(500 * time.Millisecond) {
		t.Fatalf("a device connected before the archive subscribed (err %v)", connected.Error())
	}
	var subscribedAt atomic.Int64
	s, err := NewSubscriber(SubscriberOptions{Broker: b.URL(), ClientID: "archive-1", Dial: b.DialInternal,
		Handler: func(context.Context, Delivery) ([]byte, error) { return nil, nil }, Logger: testLogger(t),
		Subscribed: func() {
			subscribedAt.CompareAndSwap(0, time.Now().UnixNano())
			b.OpenToDevices()
		}})
	if err != nil {
		t.Fatal(err)
	}
	run(t, "subscriber", s.Start)
	if !connected.WaitTimeout(20*time.Second) || connected.Error() != nil {
		t.Fatalf("the device did not connect once the archive subscribed: %v", connected.Error())
	}
	t.Cleanup(func() { dev.Disconnect(0) })
	if subscribedAt.Load() == 0 {
		t.Fatal("the device connected, Subscribed never ran")
	}
	// Its first message, published at once, reaches the subscriber (a
	// frame that does not parse: counted as a bad frame, not lost).
	if tok := dev.Publish(topicRoot+"site1/devA/bundles", 1, false, []byte("not a frame")); !tok.WaitTimeout(20*time.Second) || tok.Error() != nil {
		t.Fatalf("publish: %v", tok.Error())
	}
	waitFor(t, "the first message at the subscriber", 10*time.Second, func() bool { return s.Stats().BadFrames == 1 })
}
