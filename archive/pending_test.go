package archive_test

import (
	"crypto/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/edgeseal/edgeseal/archive"
	"github.com/edgeseal/edgeseal/bundle/bundletest"
	"github.com/edgeseal/edgeseal/sync"
)

func (e *env) alertsOf(kind string) []archive.Alert {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []archive.Alert
	for _, al := range e.alerts {
		if al.Kind == kind {
			out = append(out, al)
		}
	}
	return out
}

// TestPendingRequestsKept: a later request of another key does not
// replace the pending one: every key waits, approve picks one by key id
// and the others stay; beyond MaxPendingPerDevice the oldest is evicted,
// logged and alerted.
func TestPendingRequestsKept(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	var chains []*bundletest.Chain
	for range archive.MaxPendingPerDevice + 1 {
		chains = append(chains, newChain(t, 0, bundletest.Options{}))
	}
	name := chains[0].DeviceName()
	e.enroll(chains[0])
	info := e.enroll(chains[1])
	if got := info.PendingKeys(); len(got) != 2 || got[0] != chains[0].Trust.KeyID || got[1] != chains[1].Trust.KeyID {
		t.Fatalf("pending keys after two requests: %v", got)
	}
	// The same key again replaces its own request only.
	info = e.enroll(chains[0])
	if got := info.PendingKeys(); len(got) != 2 {
		t.Fatalf("pending keys after a repeated request: %v", got)
	}
	if _, err := e.a.Devices().Approve(ctx, name, "", "op"); err == nil || !strings.Contains(err.Error(), "2 pending keys") {
		t.Fatalf("approve without a key id among two pending: %v", err)
	}
	info, err := e.a.Devices().ApproveEnrollment(ctx, name, archive.Approval{KeyID: chains[1].Trust.KeyID, By: "op", NoActivation: true})
	if err != nil {
		t.Fatal(err)
	}
	if info.KeyID != chains[1].Trust.KeyID || len(info.Requests) != 1 || info.Requests[0].KeyID() != chains[0].Trust.KeyID {
		t.Fatalf("after approving the second key: %+v", info)
	}
	// A request for the approved device is an alarm that names the rekey.
	e.enrollMQTT(chains[2])
	als := e.alertsOf(archive.KindEnrollmentApproved)
	if len(als) != 1 || als[0].Severity != archive.SeverityAlarm || !strings.Contains(strings.Join(als[0].Reasons, "\n"), "devices rekey "+name+" --key "+chains[2].Trust.KeyID) {
		t.Fatalf("alarm of a new key for an approved device: %+v", als)
	}
	for _, c := range chains[3:] {
		e.enroll(c)
	}
	for _, c := range chains[:2] { // 0 (pending) and 1 (approved)
		e.enroll(c)
	}
	info = e.device(name)
	want := []string{chains[2].Trust.KeyID, chains[3].Trust.KeyID, chains[4].Trust.KeyID, chains[0].Trust.KeyID}
	if got := info.PendingKeys(); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("pending keys:\n got %v\nwant %v", got, want)
	}
	// One more key evicts the oldest (chains[2]).
	extra := newChain(t, 0, bundletest.Options{})
	info = e.enroll(extra)
	if len(info.Requests) != archive.MaxPendingPerDevice || info.PendingKey(chains[2].Trust.KeyID) != nil || info.PendingKey(extra.Trust.KeyID) == nil {
		t.Fatalf("after a request beyond the bound: %v", info.PendingKeys())
	}
	ev := e.alertsOf(archive.KindEnrollmentEvicted)
	if len(ev) != 1 || !strings.Contains(ev[0].Reasons[0], chains[2].Trust.KeyID) || ev[0].Device != name {
		t.Fatalf("eviction alert: %+v", ev)
	}
	// The registry reads back the same.
	e.reopen()
	if got := e.device(name).PendingKeys(); len(got) != archive.MaxPendingPerDevice || got[len(got)-1] != extra.Trust.KeyID {
		t.Fatalf("pending keys after a reopen: %v", got)
	}
}

// enrollMQTT sends the chain's trust as an enrollment over MQTT and
// returns the archive's answer.
func (e *env) enrollMQTT(c *bundletest.Chain) *sync.EnrollAck {
	e.t.Helper()
	raw, err := c.Trust.Marshal()
	if err != nil {
		e.t.Fatal(err)
	}
	return e.send(c.Opts.Site, c.Opts.Device, raw)
}

func (e *env) send(site, device string, raw []byte) *sync.EnrollAck {
	e.t.Helper()
	reply, err := e.a.ReceiveEnrollment(e.t.Context(), site, device, raw)
	if err != nil {
		e.t.Fatal(err)
	}
	ack, err := sync.VerifyEnrollAck(reply, e.a.KeyID(), e.a.PublicKey())
	if err != nil {
		e.t.Fatal(err)
	}
	return ack
}

// TestActivationRefused: a pending answer carries a credential challenge
// for the request's EK and AK; an answer that is not its credential is
// refused with an alarm, and approval without activation is refused
// unless NoActivation.
func TestActivationRefused(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	c := newChain(t, 0, bundletest.Options{})
	name, key := c.DeviceName(), c.Trust.KeyID
	ack := e.enrollMQTT(c)
	if ack.Status != sync.EnrollPending || ack.Challenge == "" {
		t.Fatalf("answer to a new request: %+v", ack)
	}
	ch, err := archive.ParseChallenge([]byte(ack.Challenge))
	if err != nil || ch.Device != name || ch.KeyID != key {
		t.Fatalf("challenge %+v: %v", ch, err)
	}
	if p := e.device(name).PendingKey(key); p == nil || p.Challenge == "" || p.Activated() {
		t.Fatalf("registry after the challenge: %+v", p)
	}
	guess := make([]byte, 32)
	_, _ = rand.Read(guess)
	resp, err := (&archive.ActivationResponse{Version: 1, Type: archive.TypeActivation, Device: name, KeyID: key, Credential: guess}).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	ack = e.send(c.Opts.Site, c.Opts.Device, resp)
	if ack.Status != sync.EnrollRefused || !strings.Contains(ack.Reason, "credential activation FAILED for key "+key) {
		t.Fatalf("answer to a wrong credential: %+v", ack)
	}
	if als := e.alertsOf(archive.KindActivationFailed); len(als) != 1 || als[0].Severity != archive.SeverityAlarm {
		t.Fatalf("activation alarm: %+v", als)
	}
	// Another device's topic.
	ack = e.send(c.Opts.Site, "other", resp)
	if ack.Status != sync.EnrollRefused || !strings.Contains(ack.Reason, "came on the topic of "+c.Opts.Site+"/other") {
		t.Fatalf("activation on another topic: %+v", ack)
	}
	if p := e.device(name).PendingKey(key); p.Activated() {
		t.Fatal("activated by a wrong credential")
	}
	_, err = e.a.Devices().ApproveEnrollment(ctx, name, archive.Approval{KeyID: key, By: "op"})
	if err == nil || !strings.Contains(err.Error(), "was not activated") || !strings.Contains(err.Error(), "--no-activation") {
		t.Fatalf("approval of a request not activated: %v", err)
	}
	if _, err := e.a.Devices().ApproveEnrollment(ctx, name, archive.Approval{By: "op", NoActivation: true}); err == nil || !strings.Contains(err.Error(), "no key id") {
		t.Fatalf("approval without a key id: %v", err)
	}
	if info, err := e.a.Devices().ApproveEnrollment(ctx, name, archive.Approval{KeyID: key, By: "op", NoActivation: true}); err != nil || info.Status != archive.StatusApproved {
		t.Fatalf("approval with NoActivation: %+v %v", info, err)
	}
}

// TestLegacyPendingRead: a registry written before pending requests were
// kept per key id (one "pending" request) is read into Requests, and
// written back without "pending".
func TestLegacyPendingRead(t *testing.T) {
	c := newChain(t, 0, bundletest.Options{})
	tb, err := c.Trust.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	req, err := archive.ParseEnrollRequest(tb)
	if err != nil {
		t.Fatal(err)
	}
	rb, err := req.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "devices.json")
	old := `{"version":1,"devices":[{"name":"site1/dev1","status":"pending","pending":` + string(rb) + `,"enrolledAt":"2026-11-01T00:00:00Z"}]}`
	if err := os.WriteFile(path, []byte(old), 0o644); err != nil {
		t.Fatal(err)
	}
	d, err := archive.OpenDevices(path, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	list, err := d.List()
	if err != nil || len(list) != 1 {
		t.Fatalf("%v %v", list, err)
	}
	p := list[0].PendingKey(c.Trust.KeyID)
	if p == nil || p.ReceivedAt != "2026-11-01T00:00:00Z" || len(list[0].Requests) != 1 || list[0].Pending == nil {
		t.Fatalf("legacy pending request not read: %+v", list[0])
	}
	if _, err := d.ApproveEnrollment(t.Context(), "site1/dev1", archive.Approval{KeyID: c.Trust.KeyID, By: "op", NoActivation: true}); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(raw), `"pending"`) {
		t.Fatalf("devices.json still written with \"pending\":\n%s", raw)
	}
}
