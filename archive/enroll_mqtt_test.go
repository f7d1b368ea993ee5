package archive_test

import (
	"crypto/sha256"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/edgeseal/edgeseal/archive"
	"github.com/edgeseal/edgeseal/bundle/bundletest"
	"github.com/edgeseal/edgeseal/bundle/wire"
	"github.com/edgeseal/edgeseal/sync"
)

// An enrollment over MQTT is stored pending, alerted, and answered with a
// signed acknowledgement; nothing from the device is accepted until an
// operator approves. A request on another device's topic, a malformed one
// and a revoked key are refused (signed), alerted, and not stored.
func TestReceiveEnrollment(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	c := newChain(t, 1, bundletest.Options{Site: "site1", Device: "dev1"})
	req, err := c.Trust.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	answer := func(site, dev string, data []byte, want string) *sync.EnrollAck {
		t.Helper()
		reply, err := e.a.ReceiveEnrollment(ctx, site, dev, data)
		if err != nil {
			t.Fatal(err)
		}
		ack, err := sync.VerifyEnrollAck(reply, e.a.KeyID(), e.a.PublicKey())
		if err != nil {
			t.Fatal(err)
		}
		if ack.Status != want || ack.Device != site+"/"+dev || ack.Request != wire.FormatHash(sha256.Sum256(data)) {
			t.Fatalf("answer %+v, want %s", ack, want)
		}
		return ack
	}
	alerts := func(kind string) int {
		e.mu.Lock()
		defer e.mu.Unlock()
		n := 0
		for _, al := range e.alerts {
			if al.Kind == kind {
				n++
			}
		}
		return n
	}

	// On another device's topic: refused, nothing stored.
	if ack := answer("site1", "other", req, sync.EnrollRefused); !strings.Contains(ack.Reason, "site1/dev1") {
		t.Fatalf("reason %q", ack.Reason)
	}
	answer("site1", "dev1", []byte(`{"version":1,"trust":{}}`), sync.EnrollRefused)
	if devs, _ := e.a.Devices().List(); len(devs) != 0 || alerts(archive.KindEnrollmentRefused) != 2 {
		t.Fatalf("refused requests stored: %+v", devs)
	}

	ack := answer("site1", "dev1", req, sync.EnrollPending)
	if ack.KeyID != c.Trust.KeyID || alerts(archive.KindEnrollment) != 1 {
		t.Fatalf("answer %+v, %d alerts", ack, alerts(archive.KindEnrollment))
	}
	devs, err := e.a.Devices().List()
	if err != nil || len(devs) != 1 || devs[0].Status != archive.StatusPending || devs[0].Pending == nil {
		t.Fatalf("registry %+v %v", devs, err)
	}
	answer("site1", "dev1", req, sync.EnrollPending) // a QoS 1 repeat
	// Pending is not approved: its bundles are refused.
	b := c.Bundles[0]
	if _, err := e.a.Receive(ctx, "site1", "dev1", raw(t, b)); !errors.As(err, new(*archive.RejectedError)) {
		t.Fatalf("bundle of a pending device: %v", err)
	}
	if _, err := e.a.Devices().Approve(ctx, "site1/dev1", ack.KeyID, "op"); err != nil {
		t.Fatal(err)
	}
	e.accept(c, b)
	answer("site1", "dev1", req, sync.EnrollApproved)

	// Revoked: the same key enrolled again is refused.
	if _, err := e.a.Devices().Revoke(ctx, "site1/dev1", "stolen"); err != nil {
		t.Fatal(err)
	}
	if ack := answer("site1", "dev1", req, sync.EnrollRefused); !strings.Contains(ack.Reason, "revoked") {
		t.Fatalf("revoked key: %+v", ack)
	}
	devs, _ = e.a.Devices().List()
	if devs[0].Status != archive.StatusRevoked || devs[0].Pending != nil || !slices.Contains(devs[0].RevokedKeys, c.Trust.KeyID) {
		t.Fatalf("after the revoked key's request: %+v", devs[0])
	}
}

// A new key enrolled over MQTT for an approved device (its TPM cleared,
// its board replaced) waits as a rekey candidate: the approved key stays,
// the alert names the rekey command; after the rekey, the closed epoch's
// key enrolled again is refused.
func TestReceiveEnrollmentRekeyCandidate(t *testing.T) {
	r := newRekeyed(t)
	e, ctx, name := r.e, t.Context(), r.old.DeviceName()
	req, err := r.fresh.Trust.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	reply, err := e.a.ReceiveEnrollment(ctx, r.fresh.Opts.Site, r.fresh.Opts.Device, req)
	if err != nil {
		t.Fatal(err)
	}
	ack, err := sync.VerifyEnrollAck(reply, e.a.KeyID(), e.a.PublicKey())
	if err != nil || ack.Status != sync.EnrollPending || ack.KeyID != r.fresh.Trust.KeyID ||
		!strings.Contains(ack.Reason, "edgeseal archive devices rekey "+name+" --key "+r.fresh.Trust.KeyID) {
		t.Fatalf("answer %+v %v", ack, err)
	}
	info := e.device(name)
	if info.Status != archive.StatusApproved || info.KeyID != r.old.Trust.KeyID || info.Pending == nil || info.Pending.ParsedTrust().KeyID != r.fresh.Trust.KeyID {
		t.Fatalf("registry after the new key's enrollment: %+v", info)
	}
	e.mu.Lock()
	var reasons string
	for _, al := range e.alerts {
		if al.Kind == archive.KindEnrollmentApproved && al.Severity == archive.SeverityAlarm {
			reasons = strings.Join(al.Reasons, "\n")
		}
	}
	e.mu.Unlock()
	if !strings.Contains(reasons, "edgeseal archive devices rekey "+name+" --key "+r.fresh.Trust.KeyID) {
		t.Fatalf("no alarm naming the rekey command for a new key of an approved device:\n%s", reasons)
	}
	if _, err := e.a.Rekey(ctx, name, r.fresh.Trust.KeyID, "op", "tpm cleared"); err != nil {
		t.Fatal(err)
	}
	old, err := r.old.Trust.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	reply, err = e.a.ReceiveEnrollment(ctx, r.old.Opts.Site, r.old.Opts.Device, old)
	if err != nil {
		t.Fatal(err)
	}
	if ack, err := sync.VerifyEnrollAck(reply, e.a.KeyID(), e.a.PublicKey()); err != nil || ack.Status != sync.EnrollRefused || !strings.Contains(ack.Reason, "closed by a rekey") {
		t.Fatalf("closed epoch's key enrolled again: %+v %v", ack, err)
	}
}
