package archive

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"

	"github.com/edgeseal/edgeseal/bundle"
	"github.com/edgeseal/edgeseal/bundle/custody"
	"github.com/edgeseal/edgeseal/bundle/wire"
)

// Separation of duties: a key that administers a device policy (a key of
// an admin set in a policy.change record) must not also sign operator
// statements. The archive learns the admin sets from the policy.change
// records of the bundles it accepted (at Open from the stored bundles,
// then from each bundle accepted) and refuses, with an alarm, an operator
// statement signed by a key it saw in one.

// changeAdmins is the part of a policy.change body the archive reads:
// the admin set's public keys (PKIX DER, base64).
type changeAdmins struct {
	Admins *struct {
		Admins []struct {
			PublicKey []byte `json:"publicKey"`
		} `json:"admins"`
	} `json:"admins"`
}

// adminKeyIDs returns the key ids of the policy administrators named by
// the policy.change records of the bundle b.
func adminKeyIDs(b *bundle.Bundle) []string {
	recs, err := b.Records()
	if err != nil {
		return nil
	}
	var ids []string
	for _, rec := range recs {
		r, err := custody.ParseRecord(rec)
		if err != nil || r.Type != custody.TypePolicyChange {
			continue
		}
		var c changeAdmins
		if json.Unmarshal(r.Body, &c) != nil || c.Admins == nil {
			continue
		}
		for _, ad := range c.Admins.Admins {
			if len(ad.PublicKey) > 0 {
				ids = append(ids, wire.FormatHash(sha256.Sum256(ad.PublicKey)))
			}
		}
	}
	return ids
}

// learnFrom records the admin keys of an accepted bundle of device; an
// operator key among them raises an alarm.
func (a *Archive) learnFrom(ctx context.Context, g *deviceGate, device string, b *bundle.Bundle) {
	for _, kid := range adminKeyIDs(b) {
		g.mu.Lock()
		_, seen := g.admins[kid]
		if !seen {
			g.admins[kid] = device
		}
		g.mu.Unlock()
		if seen {
			continue
		}
		for _, op := range a.opts.OperatorKeys {
			if KeyID(op) == kid {
				a.lg.Error("operator key is also a policy administrator key: its statements are refused", "key", kid, "device", device)
				a.alert(ctx, Alert{Severity: SeverityAlarm, Kind: KindOperator, Device: device, Reasons: []string{
					fmt.Sprintf("operator key %s is also a policy administrator key in the policy of %s: its operator statements are refused", kid, device)}})
			}
		}
	}
}

// learnAdmins reads the policy.change records of every accepted bundle.
func (a *Archive) learnAdmins(ctx context.Context, g *deviceGate) error {
	ls, err := a.readLogState(ctx)
	if err != nil {
		return err
	}
	for _, d := range ls.order {
		raw, err := a.stored(ctx, ls, d)
		if err != nil {
			return fmt.Errorf("archive: bundle %s: %w", wire.FormatHash(d), err)
		}
		b, err := bundle.ReadBytes(raw, a.opts.Limits)
		if err != nil {
			return fmt.Errorf("archive: bundle %s: %w", wire.FormatHash(d), err)
		}
		a.learnFrom(ctx, g, ls.bundles[d], b)
	}
	return nil
}
