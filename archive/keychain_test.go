package archive_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/edgeseal/edgeseal/archive"
	"github.com/edgeseal/edgeseal/bundle/bundletest"
	"github.com/edgeseal/edgeseal/bundle/verify"
	"github.com/edgeseal/edgeseal/sync"
)

// TestArchiveFollowsRotations: three signing-key rotations inside one
// chain are accepted without an operator step, across an archive restart
// (the key in force is part of the device's state in the index).
func TestArchiveFollowsRotations(t *testing.T) {
	e := newEnv(t)
	c := newChain(t, 1, bundletest.Options{Records: 4, KeyCreate: true})
	e.approve(c)
	e.accept(c, c.Bundles[0])
	ctx := context.Background()
	for i := range 3 {
		if err := c.Rotate(ctx, bundletest.RotateOptions{}); err != nil {
			t.Fatal(err)
		}
		b, err := c.Next(ctx, 3)
		if err != nil {
			t.Fatal(err)
		}
		e.accept(c, b)
		if i == 1 {
			e.reopen()
		}
		b, err = c.Next(ctx, 2) // no key record, sealed by the new key
		if err != nil {
			t.Fatal(err)
		}
		e.accept(c, b)
	}
	// A bundle sealed by a key rotated away is refused.
	c2 := newChain(t, 1, bundletest.Options{Site: "site2", Device: "dev2", Records: 4, KeyCreate: true})
	e.approve(c2)
	e.accept(c2, c2.Bundles[0])
	soft := c2.Dev.(bundletest.Soft)
	oldKey, oldID := soft.SigningKey, c2.Identity
	if err := c2.Rotate(ctx, bundletest.RotateOptions{}); err != nil {
		t.Fatal(err)
	}
	b, err := c2.Next(ctx, 3)
	if err != nil {
		t.Fatal(err)
	}
	e.accept(c2, b)
	soft.SigningKey, c2.Identity = oldKey, oldID
	b, err = c2.Next(ctx, 3)
	if err != nil {
		t.Fatal(err)
	}
	rj := e.refused(c2.Opts.Site, c2.Opts.Device, raw(t, b), verify.CheckKeysTrusted)
	if !strings.Contains(rj.Error(), oldID.KeyID) {
		t.Fatalf("rejection does not name the rotated key: %v", rj)
	}
}

// TestArchiveRefusesRevokedKey: after the operator revokes the device's
// signing key, a bundle it sealed is refused with a signed rejection
// naming the key; the device stays approved.
func TestArchiveRefusesRevokedKey(t *testing.T) {
	e := newEnv(t)
	c := newChain(t, 2, bundletest.Options{Records: 4, KeyCreate: true})
	e.approve(c)
	e.accept(c, c.Bundles[0])
	ctx := t.Context()
	key := c.Identity.KeyID
	if _, err := e.a.Devices().RevokeKey(ctx, c.DeviceName(), "md5:x", "r", "op"); err == nil {
		t.Fatal("revoke-key took a malformed key id")
	}
	if _, err := e.a.Devices().RevokeKey(ctx, c.DeviceName(), key, "", "op"); err == nil {
		t.Fatal("revoke-key without a reason")
	}
	var de *archive.DeviceError
	if _, err := e.a.Devices().RevokeKey(ctx, "site9/none", key, "r", "op"); !errors.As(err, &de) {
		t.Fatalf("revoke-key of an unknown device: %v", err)
	}
	info, err := e.a.Devices().RevokeKey(ctx, c.DeviceName(), key, "leaked in a backup", "alice")
	if err != nil {
		t.Fatal(err)
	}
	if info.Status != archive.StatusApproved || len(info.KeyRevocations) != 1 || info.KeyRevocations[0].By != "alice" {
		t.Fatalf("after revoke-key: %+v", info)
	}
	data := raw(t, c.Bundles[1])
	reply, err := e.a.Receive(ctx, c.Opts.Site, c.Opts.Device, data)
	_ = e.refused(c.Opts.Site, c.Opts.Device, data, archive.CheckKeyRevoked)
	var rj *archive.RejectedError
	if !errors.As(err, &rj) {
		t.Fatalf("bundle sealed by a revoked key: %v", err)
	}
	got, err := sync.VerifyRejection(reply, e.a.KeyID(), e.a.PublicKey())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(got.Reason, key) || !strings.Contains(got.Reason, "leaked in a backup") {
		t.Fatalf("signed rejection does not name the key and reason: %q", got.Reason)
	}
	// The registry survives a restart.
	e.reopen()
	e.refused(c.Opts.Site, c.Opts.Device, data, archive.CheckKeyRevoked)
}
