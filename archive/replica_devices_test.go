package archive_test

import (
	"crypto/ed25519"
	"errors"
	"testing"

	"github.com/edgeseal/edgeseal/archive"
	"github.com/edgeseal/edgeseal/bundle/bundletest"
)

// TestReplicasShareDevices: two archives on one database share the
// device registry. A device enrolled and approved through one is
// admitted by the other, with no restart; revoked through the other, it
// is refused by the first, and both list it revoked. A device enrolled
// nowhere is refused by both. Each replica's check finds the bundle the
// other accepted in the shared chain-state store, with its receipt.
func TestReplicasShareDevices(t *testing.T) {
	r := newReplicas(t, 2)
	ctx := t.Context()
	a, b := r.rs[0], r.rs[1]
	c := newChain(t, 2, bundletest.Options{Site: "site1", Device: "dev1", Records: 3})
	stranger := newChain(t, 1, bundletest.Options{Site: "site1", Device: "dev2", Records: 3})
	data := [][]byte{raw(t, c.Bundles[0]), raw(t, c.Bundles[1])}

	for _, x := range []*archive.Archive{a, b} {
		if _, err := x.Receive(ctx, "site1", "dev2", raw(t, stranger.Bundles[0])); !errors.As(err, new(*archive.RejectedError)) {
			t.Fatalf("bundle of a device enrolled nowhere: %v", err)
		}
	}
	rawTrust, err := c.Trust.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	req, err := archive.ParseEnrollRequest(rawTrust)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Devices().Enroll(ctx, req); err != nil {
		t.Fatal(err)
	}
	if list, err := b.Devices().List(); err != nil || len(list) != 1 || list[0].Status != archive.StatusPending {
		t.Fatalf("the other replica lists %+v %v, want the device pending", list, err)
	}
	if _, err := a.Devices().Approve(ctx, c.DeviceName(), c.Trust.KeyID, "alice"); err != nil {
		t.Fatal(err)
	}
	reply, err := b.Receive(ctx, "site1", "dev1", data[0])
	if err != nil {
		t.Fatalf("bundle of a device approved at the other replica: %v", err)
	}
	r.verify(reply, data[0], c.DeviceName())

	if _, err := b.Devices().Revoke(ctx, c.DeviceName(), "stolen"); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Receive(ctx, "site1", "dev1", data[1]); !errors.As(err, new(*archive.RejectedError)) {
		t.Fatalf("bundle of a device revoked at the other replica: %v", err)
	}
	for i, x := range []*archive.Archive{a, b} {
		list, err := x.Devices().List()
		if err != nil || len(list) != 1 || list[0].Status != archive.StatusRevoked || list[0].RevokeReason != "stolen" {
			t.Fatalf("replica %d lists %+v %v, want the device revoked", i, list, err)
		}
	}
	for i, x := range []*archive.Archive{a, b} {
		res, err := x.Check(ctx)
		if err != nil || !res.OK() || res.Checked != 1 {
			t.Fatalf("check of replica %d: %+v %v, want the one bundle found", i, res, err)
		}
	}
}

// TestReplicasSignedStatements: with operator keys, two replicas on one
// database. A signed approval queued in the shared database (as an
// operator command does while the daemons run) is logged by the replica
// that looks first, before its next bundle, which it admits; a
// revocation logged by the other replica reaches the first through the
// shared log: the device's next bundle is refused as revoked, no
// restart. The queue ends empty and both list the device revoked.
func TestReplicasSignedStatements(t *testing.T) {
	r := newReplicas(t, 2, operatorKey.Public().(ed25519.PublicKey))
	ctx := t.Context()
	a, b := r.rs[0], r.rs[1]
	c := newChain(t, 2, bundletest.Options{Site: "site1", Device: "dev1", Records: 3})
	data := [][]byte{raw(t, c.Bundles[0]), raw(t, c.Bundles[1])}
	trust, err := c.Trust.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	req, err := archive.ParseEnrollRequest(trust)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Devices().Enroll(ctx, req); err != nil {
		t.Fatal(err)
	}
	sign := func(s *archive.OperatorStatement) []byte {
		t.Helper()
		s.By, s.Time, s.Device = "alice", "2026-11-26T02:00:00.000000Z", c.DeviceName()
		rec, err := archive.SignOperatorStatement(s, operatorKey)
		if err != nil {
			t.Fatal(err)
		}
		return rec
	}
	approve := sign(&archive.OperatorStatement{Type: archive.StatementDeviceApprove, KeyID: c.Trust.KeyID,
		TrustDigest: archive.TrustDigest(trust), NoActivation: true})
	if _, err := r.sts[0].Statements().Queue(ctx, approve); err != nil {
		t.Fatal(err)
	}
	reply, err := b.Receive(ctx, "site1", "dev1", data[0])
	if err != nil {
		t.Fatalf("bundle after a queued approval: %v", err)
	}
	r.verify(reply, data[0], c.DeviceName())
	if p, err := r.sts[1].Statements().Pending(ctx, 10); err != nil || len(p) != 0 {
		t.Fatalf("queue after the statement was logged: %d %v", len(p), err)
	}

	revoke := sign(&archive.OperatorStatement{Type: archive.StatementDeviceRevoke, Reason: "stolen"})
	if _, err := b.DeviceStatement(ctx, revoke); err != nil {
		t.Fatal(err)
	}
	_, err = a.Receive(ctx, "site1", "dev1", data[1])
	var rj *archive.RejectedError
	if !errors.As(err, &rj) || !rj.Has(archive.CheckRevoked) {
		t.Fatalf("bundle of a device revoked through the other replica: %v", err)
	}
	for i, x := range []*archive.Archive{a, b} {
		list, err := x.Devices().List()
		if err != nil || len(list) != 1 || list[0].Status != archive.StatusRevoked {
			t.Fatalf("replica %d lists %+v %v, want the device revoked", i, list, err)
		}
	}
}
