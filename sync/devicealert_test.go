package sync

import (
	"context"
	"errors"
	"os"
	"strings"
	gosync "sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/edgeseal/edgeseal/sync/mqtttest"
)

// TestDeviceAlertFormat: the vector of sync/testdata/devicealert-v1.json
// parses and marshals to the same bytes; a detail with control characters
// is cleaned and a long one cut; non-canonical, oversized, unknown-member
// or badly named alerts are refused. SYNC_WRITE_VECTOR=1 rewrites the
// vector first.
func TestDeviceAlertFormat(t *testing.T) {
	n := NewDeviceAlert("site1", "dev1", "schema.changed", time.Date(2026, 12, 7, 9, 30, 0, 0, time.UTC), 42,
		"schema doc@1: bytes changed under the same name and version")
	if os.Getenv("SYNC_WRITE_VECTOR") == "1" {
		b, err := n.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile("testdata/devicealert-v1.json", append(b, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	vec, err := os.ReadFile("testdata/devicealert-v1.json")
	if err != nil {
		t.Fatal(err)
	}
	vec = []byte(strings.TrimSuffix(string(vec), "\n"))
	a, err := ParseDeviceAlert(vec)
	if err != nil {
		t.Fatal(err)
	}
	if a.Kind != "schema.changed" || a.Site != "site1" || a.Device != "dev1" || a.Seq == nil || *a.Seq != 42 {
		t.Fatalf("vector %+v", a)
	}
	b, err := n.Marshal()
	if err != nil || string(b) != string(vec) {
		t.Fatalf("marshal %s %v\nwant %s", b, err, vec)
	}
	noSeq := NewDeviceAlert("site1", "dev1", "outbox.quota", time.Now(), -1, "line1\nline2\x00\u2028"+strings.Repeat("é", 600))
	if noSeq.Seq != nil || strings.ContainsAny(noSeq.Detail, "\n\x00\u2028") || len(noSeq.Detail) > MaxAlertDetail || !strings.HasSuffix(noSeq.Detail, "...") {
		t.Fatalf("detail not cleaned: %q", noSeq.Detail)
	}
	if b, err := noSeq.Marshal(); err != nil || strings.Contains(string(b), `"seq"`) {
		t.Fatalf("no seq: %s %v", b, err)
	} else if _, err := ParseDeviceAlert(b); err != nil {
		t.Fatal(err)
	}
	for name, bad := range map[string]string{
		"spaces":       strings.Replace(string(vec), `,"device"`, `, "device"`, 1),
		"order":        `{"device":"dev1","detail":"x","kind":"k","site":"site1","time":"2026-12-07T09:30:00.000000Z"}`,
		"unknown":      strings.Replace(string(vec), `"detail"`, `"extra":1,"detail"`, 1),
		"missing":      `{"device":"dev1","kind":"k","site":"site1","time":"2026-12-07T09:30:00.000000Z"}`,
		"null seq":     strings.Replace(string(vec), `"seq":42`, `"seq":null`, 1),
		"kind":         strings.Replace(string(vec), `schema.changed`, `Schema Changed`, 1),
		"device":       strings.Replace(string(vec), `"dev1"`, `"../x"`, 1),
		"time":         strings.Replace(string(vec), `2026-12-07T09:30:00.000000Z`, `yesterday`, 1),
		"control":      strings.Replace(string(vec), `bytes changed`, `bytes\nchanged`, 1),
		"trailing":     string(vec) + " {}",
		"oversized":    strings.Replace(string(vec), `bytes changed`, strings.Repeat("x", MaxDeviceAlert), 1),
		"long detail":  strings.Replace(string(vec), `bytes changed`, strings.Repeat("x", MaxAlertDetail), 1),
		"not json":     "alert!",
		"empty object": "{}",
	} {
		var de *DeviceAlertError
		if _, err := ParseDeviceAlert([]byte(bad)); !errors.As(err, &de) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if err := func() error { x := n; x.Kind = ""; _, err := x.Marshal(); return err }(); err == nil {
		t.Error("an alert without a kind marshalled")
	}
}

// outboxStatusVector is the report of testdata/outboxstatus-v1.json.
func outboxStatusVector() DeviceAlert {
	return NewOutboxStatus("site1", "dev1", time.Date(2026, 12, 7, 9, 30, 0, 0, time.UTC), 12, time.Date(2026, 12, 7, 8, 15, 0, 0, time.UTC))
}

// TestOutboxStatusFormat: the vector of testdata/outboxstatus-v1.json
// parses and marshals to the same bytes; an empty outbox has no oldest;
// a report under another kind, the kind without a report, a negative
// depth and a malformed oldest are refused.
func TestOutboxStatusFormat(t *testing.T) {
	vec, err := os.ReadFile("testdata/outboxstatus-v1.json")
	if err != nil {
		t.Fatal(err)
	}
	vec = []byte(strings.TrimSuffix(string(vec), "\n"))
	a, err := ParseDeviceAlert(vec)
	if err != nil {
		t.Fatal(err)
	}
	if a.Kind != AlertOutboxStatus || a.Outbox == nil || a.Outbox.Depth != 12 || a.Outbox.Oldest != "2026-12-07T08:15:00.000000Z" || a.Seq != nil {
		t.Fatalf("vector %+v", a)
	}
	v := outboxStatusVector()
	if b, err := v.Marshal(); err != nil || string(b) != string(vec) {
		t.Fatalf("marshal %s %v\nwant %s", b, err, vec)
	}
	empty := NewOutboxStatus("site1", "dev1", time.Now(), 0, time.Time{})
	if b, err := empty.Marshal(); err != nil || strings.Contains(string(b), "oldest") || !strings.Contains(string(b), `"outbox":{"depth":0}`) {
		t.Fatalf("empty outbox: %s %v", b, err)
	}
	for name, bad := range map[string]string{
		"other kind":     strings.Replace(string(vec), `outbox.status`, `outbox.quota`, 1),
		"no report":      strings.Replace(string(vec), `"outbox":{"depth":12,"oldest":"2026-12-07T08:15:00.000000Z"},`, ``, 1),
		"negative depth": strings.Replace(string(vec), `"depth":12`, `"depth":-1`, 1),
		"oldest":         strings.Replace(string(vec), `2026-12-07T08:15:00.000000Z`, `soon`, 1),
		"unknown member": strings.Replace(string(vec), `"depth":12`, `"depth":12,"extra":1`, 1),
	} {
		var de *DeviceAlertError
		if _, err := ParseDeviceAlert([]byte(bad)); !errors.As(err, &de) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// TestOutboxStatusQueue: a report replaces the one still queued and never
// takes an alarm's place in a full queue.
func TestOutboxStatusQueue(t *testing.T) {
	o := pubOptions("tcp://127.0.0.1:1", "dev1", newMemOutbox(), newArchiveKeys(t))
	o.MaxAlerts = 2
	p, err := NewPublisher(o)
	if err != nil {
		t.Fatal(err)
	}
	for depth := range 3 {
		if err := p.Alert(NewOutboxStatus("x", "y", time.Now(), depth, time.Time{})); err != nil {
			t.Fatal(err)
		}
	}
	if st := p.AlertStats(); st.Queued != 1 || st.Dropped != 0 {
		t.Fatalf("after 3 reports: %+v", st)
	}
	for i := range 2 {
		if err := p.Alert(NewDeviceAlert("x", "y", "outbox.quota", time.Now(), int64(i), "over")); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.Alert(NewOutboxStatus("x", "y", time.Now(), 9, time.Time{})); err != nil {
		t.Fatal(err)
	}
	p.amu.Lock()
	kinds := []string{}
	for _, q := range p.alerts {
		kinds = append(kinds, q.kind)
	}
	p.amu.Unlock()
	if strings.Join(kinds, ",") != "outbox.quota,outbox.quota" {
		t.Fatalf("queue %v: want the two alarms only", kinds)
	}
}

func FuzzParseDeviceAlert(f *testing.F) {
	for _, file := range []string{"testdata/devicealert-v1.json", "testdata/outboxstatus-v1.json"} {
		if vec, err := os.ReadFile(file); err == nil {
			f.Add([]byte(strings.TrimSuffix(string(vec), "\n")))
		}
	}
	f.Add([]byte(`{"detail":"","device":"d","kind":"k","site":"s","time":"2026-12-07T09:30:00.000000Z"}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		a, err := ParseDeviceAlert(data)
		if err != nil {
			return
		}
		// An alert that parses has one spelling: its own.
		b, err := a.Marshal()
		if err != nil || string(b) != string(data) || len(b) > MaxDeviceAlert {
			t.Fatalf("accepted %q, marshals to %q (%v)", data, b, err)
		}
	})
}

// TestDeviceAlertQueue: with no broker the queue keeps MaxAlerts alerts,
// dropping the oldest and counting them; Alert never blocks.
func TestDeviceAlertQueue(t *testing.T) {
	keys := newArchiveKeys(t)
	o := pubOptions("tcp://127.0.0.1:1", "dev1", newMemOutbox(), keys)
	o.MaxAlerts = 3
	p, err := NewPublisher(o)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		if err := p.Alert(NewDeviceAlert("x", "y", "outbox.quota", time.Now(), int64(i), "over")); err != nil {
			t.Fatal(err)
		}
	}
	if st := p.AlertStats(); st.Queued != 3 || st.Dropped != 2 || st.Sent != 0 {
		t.Fatalf("stats %+v", st)
	}
	p.amu.Lock()
	first, err := ParseDeviceAlert(p.alerts[0].payload)
	p.amu.Unlock()
	// The two oldest went; site and device are the publisher's.
	if err != nil || *first.Seq != 2 || first.Site != "site1" || first.Device != "dev1" {
		t.Fatalf("oldest kept %+v %v", first, err)
	}
	var de *DeviceAlertError
	if err := p.Alert(DeviceAlert{Kind: "BAD KIND", Time: "now"}); !errors.As(err, &de) {
		t.Fatalf("a bad alert queued: %v", err)
	}
}

// TestDeviceAlertMosquitto: alerts queued before the publisher connects
// and after reach a subscriber with a DeviceAlertHandler through a real
// Mosquitto, on the device's own topic; an alert published on device A's
// topic naming device B is dropped and counted, as is a malformed one.
func TestDeviceAlertMosquitto(t *testing.T) {
	b := mqtttest.Start(t, nil)
	keys := newArchiveKeys(t)
	arch := newFakeArchive(t, keys)
	var mu gosync.Mutex
	var got []*DeviceAlert
	s, err := NewSubscriber(SubscriberOptions{Broker: b.URL, ClientID: "archive-1", Handler: arch.handle, Logger: testLogger(t),
		BackoffMin: 50 * time.Millisecond, BackoffMax: 500 * time.Millisecond,
		DeviceAlertHandler: func(_ context.Context, a *DeviceAlert) {
			mu.Lock()
			got = append(got, a)
			mu.Unlock()
		}})
	if err != nil {
		t.Fatal(err)
	}
	run(t, "subscriber", s.Start)
	waitFor(t, "subscriber connected", 10*time.Second, func() bool { return s.Stats().Connected })
	count := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(got)
	}

	p, err := NewPublisher(pubOptions(b.URL, "devA", newMemOutbox(), keys))
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Alert(NewDeviceAlert("", "", "policy.refused", time.Now(), -1, "policy reload refused")); err != nil {
		t.Fatal(err)
	}
	run(t, "publisher", p.Start)
	if err := p.Alert(NewDeviceAlert("", "", "schema.changed", time.Now(), 7, "doc@1")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "two alerts at the subscriber", 10*time.Second, func() bool { return count() == 2 })
	mu.Lock()
	if got[0].Kind != "policy.refused" || got[1].Kind != "schema.changed" || *got[1].Seq != 7 || got[1].Device != "devA" || got[1].Site != "site1" {
		t.Fatalf("alerts %+v %+v", got[0], got[1])
	}
	mu.Unlock()
	if st := p.AlertStats(); st.Sent != 2 || st.Queued != 0 || st.Dropped != 0 {
		t.Fatalf("publisher %+v", st)
	}

	// Without an ACL (this broker has none) a client may publish on
	// devA's topic an alert naming devB: the subscriber drops it.
	l, err := dial(context.Background(), dialConfig{broker: b.URL, clientID: "forger", connectTimeout: 5 * time.Second,
		onMessage: func(mqtt.Client, mqtt.Message) {}})
	if err != nil {
		t.Fatal(err)
	}
	defer l.c.Disconnect(100)
	forged := NewDeviceAlert("site1", "devB", "signer.unknown", time.Now(), -1, "forged")
	fb, _ := forged.Marshal()
	for _, m := range [][]byte{fb, []byte("not an alert")} {
		if err := waitToken(context.Background(), l.c.Publish(DeviceAlertsTopic("site1", "devA"), 1, false, m), l, 5*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "two bad alerts counted", 10*time.Second, func() bool { return s.Stats().BadAlerts == 2 })
	if count() != 2 || s.Stats().DeviceAlerts != 2 {
		t.Fatalf("a forged alert was handled: %d, %+v", count(), s.Stats())
	}
}

// TestDeviceAlertRefusedByBroker: a publisher whose certificate is not
// the device's publishes its alert on the device's topic; the embedded
// broker refuses it (and drops the connection) at each try, and the
// publisher gives the alert up after maxAlertTries, counted as dropped.
func TestDeviceAlertRefusedByBroker(t *testing.T) {
	pki := mqtttest.NewPKI(t)
	b := startAuthBroker(t, pki)
	keys := newArchiveKeys(t)
	o := pubOptions(b.URL(), "devA", newMemOutbox(), keys)
	o.TLS, o.ClientID = pki.TLS(pki.Issue(t, "site1/devB")), "impostor"
	p := startPublisher(t, o)
	if err := p.Alert(NewDeviceAlert("", "", "schema.changed", time.Now(), 1, "forged")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the refused alert dropped", 60*time.Second, func() bool { return p.AlertStats().Dropped == 1 })
	if st := p.AlertStats(); st.Sent != 0 || st.Queued != 0 {
		t.Fatalf("stats %+v", st)
	}
}
