package archive_test

import (
	"crypto/sha256"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/edgeseal/edgeseal/archive"
	"github.com/edgeseal/edgeseal/bundle"
	"github.com/edgeseal/edgeseal/bundle/bundletest"
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
		if ack.Status != want || ack.Device != site+"/"+dev || ack.Request != bundle.FormatHash(sha256.Sum256(data)) {
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
