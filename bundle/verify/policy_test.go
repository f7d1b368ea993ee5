package verify_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"slices"
	"testing"

	"github.com/edgeseal/edgeseal/bundle/bundletest"
	"github.com/edgeseal/edgeseal/bundle/custody"
	"github.com/edgeseal/edgeseal/bundle/dsse"
	"github.com/edgeseal/edgeseal/bundle/verify"

	"github.com/gowebpki/jcs"
)

// testPolicy is a signed policy as the agent journals it: the record body
// of its policy.change, and its digest.
type testPolicy struct {
	body   []byte
	digest string
	admins string // digest of the admin set
}

// newTestPolicy signs a policy text with the first signers of n Ed25519
// admins (threshold m).
func newTestPolicy(t *testing.T, text string, n, m, signers int) testPolicy {
	t.Helper()
	type admin struct {
		Name      string `json:"name"`
		PublicKey []byte `json:"publicKey"`
	}
	var admins []admin
	var privs []ed25519.PrivateKey
	for i := range n {
		pub, priv, _ := ed25519.GenerateKey(rand.Reader)
		der, _ := x509.MarshalPKIXPublicKey(pub)
		admins = append(admins, admin{Name: string(rune('a' + i)), PublicKey: der})
		privs = append(privs, priv)
	}
	canon := func(v any) []byte {
		raw, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		b, err := jcs.Transform(raw)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	payload := canon(map[string]any{"version": 1, "policy": text, "files": map[string]string{"s.json": "{}"}})
	env := &dsse.Envelope{PayloadType: verify.PolicyPayloadType, Payload: payload}
	for i := range signers {
		sum := sha256.Sum256(admins[i].PublicKey)
		env.Signatures = append(env.Signatures, dsse.Signature{KeyID: "sha256:" + hex.EncodeToString(sum[:]), Sig: ed25519.Sign(privs[i], dsse.PAE(env.PayloadType, payload))})
	}
	envBytes, err := env.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	digest := verify.PolicyDigest([]byte(text), map[string][]byte{"s.json": []byte("{}")})
	set := canon(map[string]any{"version": 1, "threshold": m, "admins": admins})
	body := canon(map[string]any{
		"policy": digest, "reason": "start", "signers": []string{},
		"admins": json.RawMessage(set), "envelope": json.RawMessage(envBytes),
	})
	sum := sha256.Sum256(set)
	return testPolicy{body: body, digest: digest, admins: "sha256:" + hex.EncodeToString(sum[:])}
}

// policyChain seals two bundles: the first led by pol's policy.change,
// with exports naming exportsName.
func policyChain(t *testing.T, pol testPolicy, exportsName string) *bundletest.Chain {
	t.Helper()
	ctx := context.Background()
	c, err := bundletest.NewChain(ctx, nil, 0, bundletest.Options{Policy: exportsName})
	if err != nil {
		t.Fatal(err)
	}
	c.Journal(custody.TypePolicyChange, custody.Actor{Kind: "agent", ID: "policy", Via: "start"}, pol.body)
	for range 2 {
		b, err := c.Next(ctx, 6)
		if err != nil {
			t.Fatal(err)
		}
		c.Bundles = append(c.Bundles, b)
	}
	return c
}

func TestPolicyChecks(t *testing.T) {
	good := newTestPolicy(t, "version: 1\n", 2, 2, 2)

	c := policyChain(t, good, good.digest)
	r := verify.Verify(c.Bundles[0], c.Trust, nil)
	if !r.OK() || r.State.Policy == nil || r.State.Policy.Digest != good.digest {
		t.Fatalf("good chain, first bundle:\n%s\nstate %+v", r, r.State)
	}
	r2 := verify.Verify(c.Bundles[1], c.Trust, r.State)
	if !r2.OK() || r2.State.Policy == nil || r2.State.Policy.Digest != good.digest {
		t.Fatalf("good chain, second bundle:\n%s", r2)
	}
	// The state with the policy in force survives a round trip.
	raw, _ := r2.State.Marshal()
	if _, err := verify.ParseState(raw); err != nil {
		t.Fatal(err)
	}

	// Exports naming a policy no policy.change put in force.
	c = policyChain(t, good, verify.PolicyDigest([]byte("version: 1\n# edited\n"), nil))
	r = verify.Verify(c.Bundles[0], c.Trust, nil)
	if r.OK() || !slices.Contains(r.Failed(), verify.CheckPolicyInForce) || slices.Contains(r.Failed(), verify.CheckPolicySigned) {
		t.Fatalf("export naming an unknown policy: failed %v", r.Failed())
	}
	// ... and in a later bundle, against the state the first one left.
	c = policyChain(t, good, good.digest)
	c.Opts.Policy = verify.PolicyDigest([]byte("version: 1\n# edited\n"), nil)
	b, err := c.Next(context.Background(), 6)
	if err != nil {
		t.Fatal(err)
	}
	r = verify.Verify(c.Bundles[0], c.Trust, nil)
	if r2 := verify.Verify(b, c.Trust, r.State); !r.OK() || r2.OK() || !slices.Contains(r2.Failed(), verify.CheckPolicyInForce) {
		t.Fatalf("export naming an unknown policy in a later bundle: failed %v", r2.Failed())
	}

	// A policy.change signed by one admin of a 2-of-2 set.
	below := newTestPolicy(t, "version: 1\n", 2, 2, 1)
	c = policyChain(t, below, below.digest)
	r = verify.Verify(c.Bundles[0], c.Trust, nil)
	if r.OK() || !slices.Contains(r.Failed(), verify.CheckPolicySigned) || !slices.Contains(r.Failed(), verify.CheckPolicyInForce) {
		t.Fatalf("policy.change below threshold: failed %v", r.Failed())
	}

	// A policy.change whose body names another digest than its envelope.
	forged := good
	var m map[string]json.RawMessage
	_ = json.Unmarshal(good.body, &m)
	m["policy"] = json.RawMessage(`"` + verify.PolicyDigest([]byte("other"), nil) + `"`)
	forged.body, _ = json.Marshal(m)
	c = policyChain(t, forged, good.digest)
	r = verify.Verify(c.Bundles[0], c.Trust, nil)
	if r.OK() || !slices.Contains(r.Failed(), verify.CheckPolicySigned) {
		t.Fatalf("policy.change naming another digest: failed %v", r.Failed())
	}
}

// A trust file that pins the admin set: policy.change records must carry
// it, and exports from the chain's start must follow one.
func TestPolicyAdminsPinned(t *testing.T) {
	good := newTestPolicy(t, "version: 1\n", 2, 2, 2)
	c := policyChain(t, good, good.digest)
	c.Trust.PolicyAdmins = good.admins
	r := verify.Verify(c.Bundles[0], c.Trust, nil)
	if !r.OK() {
		t.Fatalf("pinned, same set:\n%s", r)
	}
	if r2 := verify.Verify(c.Bundles[1], c.Trust, r.State); !r2.OK() {
		t.Fatalf("pinned, second bundle:\n%s", r2)
	}

	other := newTestPolicy(t, "version: 1\n", 2, 2, 2) // another admin set
	c = policyChain(t, other, other.digest)
	c.Trust.PolicyAdmins = good.admins
	if r := verify.Verify(c.Bundles[0], c.Trust, nil); r.OK() || !slices.Contains(r.Failed(), verify.CheckPolicySigned) {
		t.Fatalf("pinned, another admin set: failed %v", r.Failed())
	}

	// An unsigned policy from the start: no policy.change at all.
	plain, err := bundletest.NewChain(context.Background(), nil, 1, bundletest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	plain.Trust.PolicyAdmins = good.admins
	if r := verify.Verify(plain.Bundles[0], plain.Trust, nil); r.OK() || !slices.Contains(r.Failed(), verify.CheckPolicyInForce) {
		t.Fatalf("pinned, no policy.change: failed %v", r.Failed())
	}
}
