package main

import (
	"context"
	"encoding/json"

	"github.com/edgeseal/edgeseal/agent/policy/signed"
	"github.com/edgeseal/edgeseal/bundle/bundletest"
	"github.com/edgeseal/edgeseal/bundle/custody"
	"github.com/edgeseal/edgeseal/bundle/dsse"
	"github.com/edgeseal/edgeseal/bundle/verify"
)

// Trust files of the signed-policy devices.
const (
	trustSigned      = "trust/site1-dev5.json"              // pins dev5's admin set
	trustSignedOther = "trust/site1-dev5.other-admins.json" // the same device, another admin set pinned
	trustBelow       = "trust/site1-dev6.json"
)

// corpusPolicy is the policy text the signed-policy devices run on.
const corpusPolicy = "version: 1\nworkflows:\n  - name: monthly-report\n    classifications: [internal]\n    retention: 7y\n    destinations: [archive]\n    principals: [n8n-reports]\n    max_size: 1048576\n"

// policyChange signs corpusPolicy with the first signers of a new 2-of-2
// admin set and returns the policy.change body, the policy's digest and
// the admin set's digest.
func policyChange(ctx context.Context, signers int) (body []byte, digest, admins string, err error) {
	set := signed.Admins{Version: signed.AdminsVersion, Threshold: 2}
	var keys []*signed.Key
	for _, name := range []string{"alice", "bob"} {
		priv, pub, err := signed.GenerateKey(name == "bob")
		if err != nil {
			return nil, "", "", err
		}
		k, err := signed.ParseKey(priv)
		if err != nil {
			return nil, "", "", err
		}
		keys = append(keys, k)
		set.Admins = append(set.Admins, signed.Admin{Name: name, PublicKey: pub})
	}
	raw, err := json.Marshal(&set)
	if err != nil {
		return nil, "", "", err
	}
	a, err := signed.ParseAdmins(raw)
	if err != nil {
		return nil, "", "", err
	}
	doc := signed.Document{Version: signed.DocumentVersion, Policy: corpusPolicy, Files: map[string]string{}}
	payload, err := doc.Marshal()
	if err != nil {
		return nil, "", "", err
	}
	_, p, err := signed.ParseDocument(payload)
	if err != nil {
		return nil, "", "", err
	}
	var env []byte
	var names []string
	for _, k := range keys[:signers] {
		var e *dsse.Envelope
		if env != nil {
			if e, _, _, err = signed.ParseEnvelope(env); err != nil {
				return nil, "", "", err
			}
		}
		if env, err = signed.Sign(ctx, e, payload, k); err != nil {
			return nil, "", "", err
		}
		names = append(names, set.Admins[len(names)].Name)
	}
	c := signed.ChangeBody{Policy: p.Digest(), Reason: signed.ReasonStart, Signers: names, Admins: a, Envelope: env}
	body, err = json.Marshal(&c)
	return body, p.Digest(), a.Digest(), err
}

// signedPolicy adds the cases of signed policies: a device whose exports
// follow a policy.change signed 2 of 2 (its trust file pins the admin
// set), exports naming a policy no policy.change put in force, the same
// bundle against a trust file pinning another admin set, and a
// policy.change signed by one admin of two.
func (c *corpus) signedPolicy(ctx context.Context) error {
	opts := func(dev, policy string) bundletest.Options {
		return bundletest.Options{Site: "site1", Device: dev, Records: 6, PayloadSize: 48, KeyCreate: true, Policy: policy}
	}
	body, digest, admins, err := policyChange(ctx, 2)
	if err != nil {
		return err
	}
	ch, err := bundletest.NewChain(ctx, nil, 0, opts("dev5", digest))
	if err != nil {
		return err
	}
	ch.Journal(custody.TypePolicyChange, custody.Actor{Kind: "agent", ID: "policy", Via: "start"}, body)
	good, err := ch.Next(ctx, 6)
	if err != nil {
		return err
	}
	ch.Opts.Policy = verify.PolicyDigest([]byte(corpusPolicy+"# edited on the device\n"), nil)
	unknown, err := ch.Next(ctx, 4)
	if err != nil {
		return err
	}
	trust := *ch.Trust
	trust.PolicyAdmins = admins
	if err := c.addTrust(trustSigned, &trust); err != nil {
		return err
	}
	_, _, otherAdmins, err := policyChange(ctx, 2)
	if err != nil {
		return err
	}
	trust.PolicyAdmins = otherAdmins
	if err := c.addTrust(trustSignedOther, &trust); err != nil {
		return err
	}
	good0, bad := goodPath("dev5", 0), "tampered/policy.inforce.unknown.tar"
	if err := c.addBundle(good0, good); err != nil {
		return err
	}
	if err := c.addBundle(bad, unknown); err != nil {
		return err
	}

	below, belowDigest, _, err := policyChange(ctx, 1)
	if err != nil {
		return err
	}
	ch6, err := bundletest.NewChain(ctx, nil, 0, opts("dev6", belowDigest))
	if err != nil {
		return err
	}
	ch6.Journal(custody.TypePolicyChange, custody.Actor{Kind: "agent", ID: "policy", Via: "start"}, below)
	belowB, err := ch6.Next(ctx, 6)
	if err != nil {
		return err
	}
	if err := c.addTrust(trustBelow, ch6.Trust); err != nil {
		return err
	}
	const badBelow = "tampered/policy.signed.below-threshold.tar"
	if err := c.addBundle(badBelow, belowB); err != nil {
		return err
	}
	c.verified("good.policy-signed", "a policy.change signed 2 of 2 by the admin set the trust file pins (policyAdmins), then exports naming that policy", trustSigned, nil, good0)
	c.refused("policy.inforce.unknown", "exports naming a policy no policy.change of the chain put in force (the file was edited on the device)", trustSigned, []string{good0}, bad, verify.CheckPolicyInForce)
	c.refused("policy.admins.other", "a good policy.change checked against a trust file that pins another admin set", trustSignedOther, nil, good0, verify.CheckPolicySigned)
	c.refused("policy.signed.below-threshold", "a policy.change signed by one admin of a 2-of-2 set", trustBelow, nil, badBelow, verify.CheckPolicySigned)
	return nil
}
