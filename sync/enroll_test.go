package sync

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"testing"
	"time"

	"github.com/edgeseal/edgeseal/bundle/wire"
	"github.com/edgeseal/edgeseal/sync/mqtttest"
)

// TestEnrollRoundTrip: Enroll publishes on the device's enroll topic
// through mosquitto, the subscriber's EnrollHandler gets the topic's
// device and the exact bytes, its signed answer comes back and verifies.
// An answer to an earlier request is skipped; no answer is ErrNoAnswer.
func TestEnrollRoundTrip(t *testing.T) {
	b := mqtttest.Start(t, nil)
	keys := newArchiveKeys(t)
	type got struct {
		site, device string
		req          []byte
	}
	calls := make(chan got, 8)
	silent := []byte(`{"silent":true}`)
	h := func(_ context.Context, site, device string, req []byte) ([]byte, error) {
		calls <- got{site, device, bytes.Clone(req)}
		if bytes.Equal(req, silent) {
			return nil, nil
		}
		// First a stale answer (another request's digest), then the one.
		stale, err := SignEnrollAck(&EnrollAck{Device: site + "/" + device, Request: wire.FormatHash(sha256.Sum256([]byte("old"))),
			Status: EnrollRefused, Reason: "old", Time: "2026-01-01T00:00:00Z"}, keys.KeyID, keys.Priv)
		if err != nil {
			return nil, err
		}
		calls <- got{"stale", "", stale}
		return SignEnrollAck(&EnrollAck{Device: site + "/" + device, Request: wire.FormatHash(sha256.Sum256(req)),
			KeyID: "sha256:k", Status: EnrollPending, Time: "2026-01-01T00:00:00Z"}, keys.KeyID, keys.Priv)
	}
	s, err := NewSubscriber(SubscriberOptions{Broker: b.URL, ClientID: "archive-1", Handler: func(context.Context, Delivery) ([]byte, error) { return nil, nil },
		EnrollHandler: h, Logger: testLogger(t), BackoffMin: 50 * time.Millisecond, BackoffMax: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	run(t, "subscriber", s.Start)
	waitFor(t, "subscriber connected", 10*time.Second, func() bool { return s.Stats().Connected })
	// The handler publishes the stale answer itself, before its reply.
	go func() {
		for c := range calls {
			if c.site == "stale" {
				s.mu.Lock()
				l := s.link
				s.mu.Unlock()
				if l != nil {
					l.c.Publish(EnrollReplyTopic("site1", "dev1"), 1, false, c.req)
				}
				continue
			}
			if c.site != "site1" || c.device != "dev1" {
				t.Errorf("handler got %s/%s", c.site, c.device)
			}
		}
	}()
	req := []byte(`{"version":1,"request":"test"}`)
	opts := EnrollOptions{Broker: b.URL, Site: "site1", Device: "dev1", ArchiveKey: keys.Pub, Request: req, Timeout: 15 * time.Second, Logger: testLogger(t)}
	ack, raw, err := Enroll(t.Context(), opts)
	if err != nil {
		t.Fatal(err)
	}
	if ack.Status != EnrollPending || ack.Device != "site1/dev1" || ack.Request != wire.FormatHash(sha256.Sum256(req)) {
		t.Fatalf("answer %+v", ack)
	}
	if again, err := VerifyEnrollAck(raw, keys.KeyID, keys.Pub); err != nil || *again != *ack {
		t.Fatalf("answer bytes: %+v %v", again, err)
	}
	if st := s.Stats(); st.Enrollments != 1 || st.Handled != 0 {
		t.Fatalf("subscriber stats %+v", st)
	}
	// No answer.
	opts.Request, opts.Timeout = silent, 500*time.Millisecond
	if _, _, err := Enroll(t.Context(), opts); !errors.Is(err, ErrNoAnswer) {
		t.Fatalf("without an answer: %v", err)
	}
	// Another key's signature is not an answer.
	other := newArchiveKeys(t)
	opts.Request, opts.ArchiveKey, opts.Timeout = req, other.Pub, 2*time.Second
	if _, _, err := Enroll(t.Context(), opts); !errors.Is(err, ErrNoAnswer) {
		t.Fatalf("answer under another key: %v", err)
	}
}

// A signed answer has one spelling and a signature; anything else is
// refused.
func TestVerifyEnrollAck(t *testing.T) {
	keys := newArchiveKeys(t)
	a := &EnrollAck{Device: "s/d", Request: wire.FormatHash(sha256.Sum256(nil)), KeyID: "sha256:x", Status: EnrollPending, Time: "2026-01-01T00:00:00Z"}
	raw, err := SignEnrollAck(a, keys.KeyID, keys.Priv)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := VerifyEnrollAck(raw, "", keys.Pub); err != nil || *got != *a {
		t.Fatalf("%+v %v", got, err)
	}
	if _, err := VerifyEnrollAck(raw, "other-id", keys.Pub); err == nil {
		t.Fatal("wrong key id accepted")
	}
	if _, err := SignEnrollAck(&EnrollAck{Device: "s/d", Request: a.Request, Status: EnrollRefused}, keys.KeyID, keys.Priv); err == nil {
		t.Fatal("refused without a reason signed")
	}
	rej, err := SignRejection(&Rejection{BundleDigest: a.Request, Device: "s/d", Reason: "x", Time: a.Time}, keys.KeyID, keys.Priv)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := VerifyEnrollAck(rej, "", keys.Pub); err == nil {
		t.Fatal("a rejection accepted as an enrollment answer")
	}
	for _, topic := range []string{"edgeseal/v1/s/d/enroll", "edgeseal/v1/s/d/enroll/reply", "edgeseal/v1/s/d/bundles", "edgeseal/v1/s/enroll"} {
		site, dev, ok := parseEnrollTopic(topic)
		if want := topic == "edgeseal/v1/s/d/enroll"; ok != want || (ok && (site != "s" || dev != "d")) {
			t.Errorf("parseEnrollTopic(%q) = %q %q %v", topic, site, dev, ok)
		}
	}
}
