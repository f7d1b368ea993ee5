package archive_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"maps"
	"testing"
	"time"

	"github.com/edgeseal/edgeseal/bundle"
	"github.com/edgeseal/edgeseal/bundle/bundletest"
	"github.com/edgeseal/edgeseal/bundle/custody"
	"github.com/edgeseal/edgeseal/bundle/trustfile"
	"github.com/edgeseal/edgeseal/bundle/verify"
)

func newPCRChain(t *testing.T) (*bundletest.Chain, bundletest.PolicyDev, *ecdsa.PrivateKey) {
	t.Helper()
	dev, op, err := bundletest.NewPolicyDev("site1/dev1")
	if err != nil {
		t.Fatal(err)
	}
	c, err := bundletest.NewChain(t.Context(), dev, 0, bundletest.Options{Records: 4})
	if err != nil {
		t.Fatal(err)
	}
	return c, dev, op
}

// firmwareUpdate moves PCR 0, has signer authorize the new values for
// device, journals the statement and returns the bundle sealed under them.
func firmwareUpdate(t *testing.T, c *bundletest.Chain, dev bundletest.PolicyDev, signer *ecdsa.PrivateKey, device string) *bundle.Bundle {
	t.Helper()
	dev.Extend(0, []byte("firmware 2"))
	dev.Bound = maps.Clone(dev.Values)
	a, err := trustfile.SignPCRAuthorization(signer, device, dev.PCRs, dev.Values, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	body, _ := a.Marshal()
	c.Journal(custody.TypePCRsAuthorized, custody.Actor{Kind: "operator", ID: a.PolicyKeyID, Via: "tpm-state"}, body)
	b, err := c.Next(t.Context(), 3)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestArchiveFollowsPCRAuthorization: after a firmware update the bundle
// carrying the operator's authorization, sealed under the new values, and
// the bundles after it are accepted with no new approval, also after the
// archive restarts (the values in force are part of the device's state).
func TestArchiveFollowsPCRAuthorization(t *testing.T) {
	e := newEnv(t)
	c, dev, op := newPCRChain(t)
	e.approve(c)
	for range 2 {
		b, err := c.Next(t.Context(), 4)
		if err != nil {
			t.Fatal(err)
		}
		e.accept(c, b)
	}
	e.accept(c, firmwareUpdate(t, c, dev, op, "site1/dev1"))
	b, _ := c.Next(t.Context(), 3)
	e.accept(c, b)
	e.reopen()
	b, _ = c.Next(t.Context(), 3)
	e.accept(c, b)
}

// TestArchiveRefusesForeignPCRAuthorization: an authorization by another
// key, or for another device, is refused with pcrs.authorization.
func TestArchiveRefusesForeignPCRAuthorization(t *testing.T) {
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	for name, tc := range map[string]struct {
		signer func(op *ecdsa.PrivateKey) *ecdsa.PrivateKey
		device string
	}{
		"other key":    {func(*ecdsa.PrivateKey) *ecdsa.PrivateKey { return other }, "site1/dev1"},
		"other device": {func(op *ecdsa.PrivateKey) *ecdsa.PrivateKey { return op }, "site1/dev2"},
	} {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t)
			c, dev, op := newPCRChain(t)
			e.approve(c)
			b, err := c.Next(t.Context(), 4)
			if err != nil {
				t.Fatal(err)
			}
			e.accept(c, b)
			bad := firmwareUpdate(t, c, dev, tc.signer(op), tc.device)
			e.refused("site1", "dev1", raw(t, bad), verify.CheckPCRsAuthorization)
		})
	}
}
