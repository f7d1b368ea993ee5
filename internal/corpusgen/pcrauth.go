package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/edgeseal/edgeseal/bundle"
	"github.com/edgeseal/edgeseal/bundle/bundletest"
	"github.com/edgeseal/edgeseal/bundle/custody"
	"github.com/edgeseal/edgeseal/bundle/trustfile"
	"github.com/edgeseal/edgeseal/bundle/verify"
)

const trustPolicy = "trust/site1-dev4.json"

// pcrAuth is a device with a version 2 trust: two bundles, a firmware
// update whose new PCR values the operator authorizes (good), then a
// second update "authorized" by a key the trust file does not name.
func (c *corpus) pcrAuth(ctx context.Context) error {
	const device = "site1/dev4"
	dev, op, err := bundletest.NewPolicyDev(device)
	if err != nil {
		return err
	}
	ch, err := bundletest.NewChain(ctx, dev, 2, bundletest.Options{Site: "site1", Device: "dev4", Records: 6, PayloadSize: 48, KeyCreate: true})
	if err != nil {
		return err
	}
	if ch.Trust.Version != trustfile.TrustVersionPCRPolicy {
		return fmt.Errorf("pcr policy device has a version %d trust", ch.Trust.Version)
	}
	if err := c.addTrust(trustPolicy, ch.Trust); err != nil {
		return err
	}
	// update moves PCR 0, has signer authorize the new values in a record
	// that leads the next bundle, and seals it.
	update := func(firmware string, signer *ecdsa.PrivateKey, at time.Time) (*bundle.Bundle, error) {
		dev.Extend(0, []byte(firmware))
		values := maps.Clone(dev.Values)
		dev.Bound = values // the TPM signs under the new authorization
		a, err := trustfile.SignPCRAuthorization(signer, device, dev.PCRs, values, at)
		if err != nil {
			return nil, err
		}
		body, err := a.Marshal()
		if err != nil {
			return nil, err
		}
		ch.Journal(custody.TypePCRsAuthorized, custody.Actor{Kind: "operator", ID: a.PolicyKeyID, Via: "cli"}, body)
		return ch.Next(ctx, 4)
	}
	authorized, err := update("firmware 2", op, ch.Opts.Start.Add(time.Hour))
	if err != nil {
		return err
	}
	next, err := ch.Next(ctx, 3)
	if err != nil {
		return err
	}
	other, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	forged, err := update("firmware 3", other, ch.Opts.Start.Add(2*time.Hour))
	if err != nil {
		return err
	}
	var prev []string
	for i, b := range ch.Bundles {
		p := goodPath("dev4", i)
		if err := c.addBundle(p, b); err != nil {
			return err
		}
		prev = append(prev, p)
	}
	good, good2 := goodPath("dev4", len(ch.Bundles)), goodPath("dev4", len(ch.Bundles)+1)
	if err := c.addBundle(good, authorized); err != nil {
		return err
	}
	if err := c.addBundle(good2, next); err != nil {
		return err
	}
	const bad = "tampered/pcrs.authorization.other-key.tar"
	if err := c.addBundle(bad, forged); err != nil {
		return err
	}
	c.verified("good.pcr-authorized", "a version 2 trust: new PCR values after a firmware update, authorized by the operator's PCR-policy key in a tpm.pcrs.authorized record of the bundle", trustPolicy, prev, good)
	c.verified("good.pcr-authorized.next", "the bundle after the authorization, sealed under the authorized values: the chain carries them as golden", trustPolicy, append(slices.Clone(prev), good), good2)
	c.refused("pcrs.unauthorized", "that bundle checked on its own, without the bundle that carries the authorization: its PCR values are not the trust file's golden ones", trustPolicy, nil, good2, verify.CheckQuotePCRs)
	c.refused("pcrs.authorization.other-key", "new PCR values authorized by a key the trust file does not name", trustPolicy, append(slices.Clone(prev), good, good2), bad, verify.CheckPCRsAuthorization)
	return nil
}
