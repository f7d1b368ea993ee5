package verify_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/edgeseal/edgeseal/bundle/bundletest"
	"github.com/edgeseal/edgeseal/bundle/custody"
	"github.com/edgeseal/edgeseal/bundle/trustfile"
	"github.com/edgeseal/edgeseal/bundle/verify"
)

type authChain struct {
	*bundletest.Chain
	dev  bundletest.PolicyDev
	op   *ecdsa.PrivateKey
	last *verify.State
}

func newAuthChain(t testing.TB) *authChain {
	t.Helper()
	dev, op, err := bundletest.NewPolicyDev("site1/dev1")
	if err != nil {
		t.Fatal(err)
	}
	c, err := bundletest.NewChain(context.Background(), dev, 2, bundletest.Options{Records: 4})
	if err != nil {
		t.Fatal(err)
	}
	if c.Trust.Version != trustfile.TrustVersionPCRPolicy || c.Trust.PCRPolicy() == nil {
		t.Fatalf("trust version %d without the policy key", c.Trust.Version)
	}
	st := c.States[1]
	if st.PCRs == nil || st.PCRs.Record != "" {
		t.Fatalf("state pcrs %+v, want the trust's values", st.PCRs)
	}
	return &authChain{Chain: c, dev: dev, op: op, last: st}
}

// firmwareUpdate moves PCR 0 and returns the new values.
func (c *authChain) firmwareUpdate() map[int][]byte {
	c.dev.Extend(0, []byte("firmware 2"))
	return maps.Clone(c.dev.Values)
}

func (c *authChain) authorize(t *testing.T, signer *ecdsa.PrivateKey, device string, values map[int][]byte) []byte {
	t.Helper()
	return c.authorizeAt(t, signer, device, values, time.Now())
}

// authorizeAt journals an authorization signed at "at" and returns its
// statement.
func (c *authChain) authorizeAt(t *testing.T, signer *ecdsa.PrivateKey, device string, values map[int][]byte, at time.Time) []byte {
	t.Helper()
	a, err := trustfile.SignPCRAuthorization(signer, device, c.dev.PCRs, values, at)
	if err != nil {
		t.Fatal(err)
	}
	body, err := a.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	c.Journal(custody.TypePCRsAuthorized, custody.Actor{Kind: "operator", ID: a.PolicyKeyID, Via: "cli"}, body)
	return body
}

func (c *authChain) seal(t *testing.T) *verify.Report {
	t.Helper()
	b, err := c.Next(context.Background(), 3)
	if err != nil {
		t.Fatal(err)
	}
	return verify.Verify(b, c.Trust, c.last)
}

// TestVerifyPCRAuthorizationChain: after a firmware update, a bundle that
// journals the operator's authorization of the new values and is sealed
// under them verifies, and the state carries the new golden values to
// the next bundle.
func TestVerifyPCRAuthorizationChain(t *testing.T) {
	c := newAuthChain(t)
	newValues := c.firmwareUpdate()
	c.dev.Bound = newValues // the TPM signs under the new authorization
	c.authorize(t, c.op, "site1/dev1", newValues)
	r := c.seal(t)
	if !r.OK() {
		t.Fatalf("bundle with the authorization does not verify:\n%s", r)
	}
	ck, _ := r.Get(verify.CheckPCRsAuthorization)
	if !strings.Contains(ck.Detail, "1 authorization") {
		t.Errorf("check detail %q does not report the authorization", ck.Detail)
	}
	st := r.State
	if st.PCRs == nil || st.PCRs.Record == "" || st.PCRs.Values["0"] != hex.EncodeToString(newValues[0]) {
		t.Fatalf("state pcrs %+v, want the authorized values", st.PCRs)
	}
	raw, _ := st.Marshal()
	again, err := verify.ParseState(raw)
	if err != nil || again.PCRs.Values["0"] != st.PCRs.Values["0"] {
		t.Fatalf("state round trip: %v", err)
	}
	c.last = st
	// The next bundle, with no authorization, verifies from the state.
	r = c.seal(t)
	if !r.OK() {
		t.Fatalf("next bundle does not verify:\n%s", r)
	}
	if r.State.PCRs.Record != st.PCRs.Record {
		t.Fatal("the authorization in force was not carried")
	}
	// Verified without the chain's state it shows values other than the
	// trust's.
	b, _ := c.Next(context.Background(), 2)
	if r := verify.Verify(b, c.Trust, nil); r.OK() || !slices.Contains(r.Failed(), verify.CheckQuotePCRs) {
		t.Fatalf("bundle under authorized values verified against the trust's values: %v", r.Failed())
	}
}

// TestVerifyPCRAuthorizationRefused: a sealed authorization that is not
// by the trust's policy key, not for this device, or tampered fails the
// bundle with pcrs.authorization naming the record; the quote under the
// new values is refused too.
func TestVerifyPCRAuthorizationRefused(t *testing.T) {
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	for _, tc := range []struct {
		name   string
		signer func(c *authChain) *ecdsa.PrivateKey
		device string
		want   string
	}{
		{"wrong key", func(*authChain) *ecdsa.PrivateKey { return other }, "site1/dev1", "policyKeyId"},
		{"other device", func(c *authChain) *ecdsa.PrivateKey { return c.op }, "site1/dev2", "device"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newAuthChain(t)
			v := c.firmwareUpdate()
			c.dev.Bound = v
			c.authorize(t, tc.signer(c), tc.device, v)
			r := c.seal(t)
			ck, _ := r.Get(verify.CheckPCRsAuthorization)
			if ck.OK || !strings.Contains(ck.Detail, "record 8") || !strings.Contains(ck.Detail, tc.want) {
				t.Fatalf("pcrs.authorization %+v, want a failure naming record 8 and %s", ck, tc.want)
			}
			if !slices.Contains(r.Failed(), verify.CheckQuotePCRs) || r.State != nil {
				t.Fatalf("failed %v", r.Failed())
			}
		})
	}
	t.Run("flipped signature", func(t *testing.T) {
		c := newAuthChain(t)
		v := c.firmwareUpdate()
		c.dev.Bound = v
		a, _ := trustfile.SignPCRAuthorization(c.op, "site1/dev1", c.dev.PCRs, v, time.Now())
		a.Signature[len(a.Signature)-1] ^= 1
		body, _ := a.Marshal()
		c.Journal(custody.TypePCRsAuthorized, custody.Actor{Kind: "operator", ID: "x"}, body)
		r := c.seal(t)
		if ck, _ := r.Get(verify.CheckPCRsAuthorization); ck.OK || !strings.Contains(ck.Detail, "signature") {
			t.Fatalf("flipped signature: %+v", ck)
		}
	})
	t.Run("no authorization", func(t *testing.T) {
		c := newAuthChain(t)
		c.dev.SignWhenMoved = true // a lying host: the quote shows the new values anyway
		c.firmwareUpdate()
		r := c.seal(t)
		if ck, _ := r.Get(verify.CheckQuotePCRs); ck.OK || !strings.Contains(ck.Detail, "differ from golden") {
			t.Fatalf("quote under unauthorized values: %+v", ck)
		}
	})
}

// TestVerifyPCRAuthorizationLegacyTrust: a version 1 trust has no policy
// key to check an authorization record with: the bundle fails.
func TestVerifyPCRAuthorizationLegacyTrust(t *testing.T) {
	c := bundletest.MustChain(t, 1, bundletest.Options{Records: 3})
	op, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	a, _ := trustfile.SignPCRAuthorization(op, c.DeviceName(), []int{0, 2, 4, 7}, c.Dev.(bundletest.Soft).Values, time.Now())
	body, _ := a.Marshal()
	c.Journal(custody.TypePCRsAuthorized, custody.Actor{Kind: "operator", ID: "x"}, body)
	b, err := c.Next(context.Background(), 2)
	if err != nil {
		t.Fatal(err)
	}
	r := verify.Verify(b, c.Trust, c.States[0])
	ck, _ := r.Get(verify.CheckPCRsAuthorization)
	if ck.OK || !strings.Contains(ck.Detail, "no pcr policy key") {
		t.Fatalf("authorization under a v1 trust: %+v", ck)
	}
	if c.Trust.Version != trustfile.TrustVersion || c.States[0].PCRs != nil {
		t.Fatal("a legacy chain got a PCR-policy trust or state")
	}
}

// TestTrustVersion2 checks DEVICE.json version 2 strictly: the policy
// digest must be PolicyAuthorize by the named key for this device.
func TestTrustVersion2(t *testing.T) {
	c := newAuthChain(t)
	raw, err := c.Trust.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := trustfile.ParseTrust(raw); err != nil {
		t.Fatalf("version 2 trust does not parse: %v", err)
	}
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, _ := x509.MarshalPKIXPublicKey(&other.PublicKey)
	tr := *c.Trust
	tr.PCRPolicyKey = der
	b, _ := tr.Marshal()
	if _, err := trustfile.ParseTrust(b); err == nil || !strings.Contains(err.Error(), "PolicyAuthorize") {
		t.Fatalf("trust naming another policy key: %v", err)
	}
	tr = *c.Trust
	tr.Version = trustfile.TrustVersion
	b, _ = tr.Marshal()
	if _, err := trustfile.ParseTrust(b); err == nil {
		t.Fatal("version 1 trust with a policy key accepted")
	}
	tr = *c.Trust
	tr.PolicyDigest = sha256.New().Sum(nil)
	b, _ = tr.Marshal()
	if _, err := trustfile.ParseTrust(b); err == nil {
		t.Fatal("version 2 trust with a wrong policy digest accepted")
	}
}

// TestVerifyPCRAuthorizationRollback: an authorization signed before the
// one in force (an old one replayed to go back to old firmware) fails the
// bundle; the same statement journaled twice (a crash between journaling
// and remembering it) passes.
func TestVerifyPCRAuthorizationRollback(t *testing.T) {
	c := newAuthChain(t)
	old := maps.Clone(c.dev.Values)
	t0 := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	v1 := c.firmwareUpdate()
	c.dev.Bound = v1
	body := c.authorizeAt(t, c.op, "site1/dev1", v1, t0.Add(time.Hour))
	r := c.seal(t)
	if !r.OK() {
		t.Fatalf("first authorization:\n%s", r)
	}
	if r.State.PCRs.Time != "2026-12-01T01:00:00.000000Z" {
		t.Fatalf("state time %q", r.State.PCRs.Time)
	}
	c.last = r.State
	// The same statement again.
	c.Journal(custody.TypePCRsAuthorized, custody.Actor{Kind: "operator", ID: "x"}, body)
	r = c.seal(t)
	if !r.OK() {
		t.Fatalf("the same authorization journaled twice:\n%s", r)
	}
	c.last = r.State
	// Back to the old firmware with an authorization signed before.
	c.dev.Values, c.dev.Bound = old, old
	c.authorizeAt(t, c.op, "site1/dev1", old, t0)
	r = c.seal(t)
	ck, _ := r.Get(verify.CheckPCRsAuthorization)
	if ck.OK || !strings.Contains(ck.Detail, "older authorization replayed") {
		t.Fatalf("rollback: %+v", ck)
	}
}
