package sync

import (
	"crypto/tls"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/edgeseal/edgeseal/sync/mqtttest"
)

// TestTLSClientCert runs mosquitto with TLS and require_certificate: a
// publisher with the client certificate delivers; one without it never
// connects and delivers nothing; a client that does not trust the server's
// CA does not connect either.
func TestTLSClientCert(t *testing.T) {
	pki := mqtttest.NewPKI(t)
	b := mqtttest.Start(t, &mqtttest.Options{TLS: pki.Files()})
	keys := newArchiveKeys(t)
	arch := newFakeArchive(t, keys)
	startSubscriber(t, b.URL, pki.ClientTLS(true), arch.handle, "archive-1")

	good := newMemOutbox()
	noCert := newMemOutbox()
	badCA := newMemOutbox()
	for i := range 3 {
		good.put(entryID(i), bundleBytes(fmt.Sprint("tls", i), 3000))
		noCert.put(entryID(i), bundleBytes(fmt.Sprint("nocert", i), 3000))
		badCA.put(entryID(i), bundleBytes(fmt.Sprint("badca", i), 3000))
	}
	o := pubOptions(b.URL, "good", good, keys)
	o.TLS = pki.ClientTLS(true)
	pg := startPublisher(t, o)

	o = pubOptions(b.URL, "nocert", noCert, keys)
	o.TLS = pki.ClientTLS(false)
	pn := startPublisher(t, o)

	other := mqtttest.NewPKI(t) // a CA the broker's certificate is not from
	o = pubOptions(b.URL, "badca", badCA, keys)
	o.TLS = other.ClientTLS(true)
	pb := startPublisher(t, o)

	waitFor(t, "delivery with the client certificate", 20*time.Second, func() bool { return good.len() == 0 && pg.Stats().Delivered == 3 })
	waitFor(t, "failed connections recorded", 10*time.Second, func() bool {
		return pn.Stats().LastError != "" && pb.Stats().LastError != ""
	})
	time.Sleep(300 * time.Millisecond)
	for name, c := range map[string]struct {
		p  *Publisher
		ob *memOutbox
	}{"no client cert": {pn, noCert}, "untrusted server": {pb, badCA}} {
		st := c.p.Stats()
		if st.Connected || st.BundlesSent != 0 || c.ob.len() != 3 {
			t.Errorf("%s: stats %+v, outbox %d", name, st, c.ob.len())
		}
		t.Logf("%s: %s", name, st.LastError)
	}
	if st := pg.Stats(); st.Delivered != 3 {
		t.Errorf("good: %+v", st)
	}
}

func TestTLSConfigChecks(t *testing.T) {
	keys := newArchiveKeys(t)
	base := pubOptions("ssl://127.0.0.1:8883", "dev1", newMemOutbox(), keys)
	base.TLS = &tls.Config{InsecureSkipVerify: true}
	_, err := NewPublisher(base)
	var ce *ConfigError
	if !errors.As(err, &ce) || ce.Field != "TLS" {
		t.Errorf("InsecureSkipVerify: %v", err)
	}
	base = pubOptions("tcp://127.0.0.1:1883", "dev1", newMemOutbox(), keys)
	base.TLS = &tls.Config{}
	if _, err := NewPublisher(base); !errors.As(err, &ce) {
		t.Errorf("TLS with tcp://: %v", err)
	}
	base = pubOptions("ws://127.0.0.1:1883", "dev1", newMemOutbox(), keys)
	if _, err := NewPublisher(base); !errors.As(err, &ce) || ce.Field != "Broker" {
		t.Errorf("ws://: %v", err)
	}
	base = pubOptions("tcp://127.0.0.1:1883", "dev/1", newMemOutbox(), keys)
	if _, err := NewPublisher(base); !errors.As(err, &ce) {
		t.Errorf("bad device: %v", err)
	}
	base = pubOptions("tcp://127.0.0.1:1883", "dev1", newMemOutbox(), keys)
	p, err := NewPublisher(base)
	if err != nil || p.opts.ClientID != "edgeseal-site1-dev1" || p.opts.Window != DefaultWindow || p.opts.MaxMessage != DefaultMaxMessage {
		t.Errorf("defaults: %v %+v", err, p.opts)
	}
}
