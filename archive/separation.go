package archive

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"maps"
	"slices"

	"github.com/edgeseal/edgeseal/bundle"
	"github.com/edgeseal/edgeseal/bundle/custody"
	"github.com/edgeseal/edgeseal/bundle/wire"
	"github.com/edgeseal/edgeseal/store"
)

// Separation of duties: a key that administers a device policy (a key of
// an admin set in a policy.change record) must not also sign operator
// statements. The archive learns the admin sets from the policy.change
// records of the bundles it accepts and refuses, with an alarm, an
// operator statement signed by a key it saw in one. The key ids of each
// bundle's admins are kept in its index event ("admins"), so Open learns
// them from the index alone; an archive whose index holds accept events
// of earlier versions (without "admins") reads those bundles once, at the
// first Open with operator keys, and records what it learnt in a
// policy.admins index event.

const eventAdmins = "policy.admins"

// adminsEvent is the index event of the admin keys learnt from the
// stored bundles whose accept events predate "admins": every such event
// before it is covered.
type adminsEvent struct {
	V      int          `json:"v"`
	Type   string       `json:"type"`
	Time   string       `json:"time"`
	Admins []adminOfDev `json:"admins"`
}

type adminOfDev struct {
	Key    string `json:"key"`    // "sha256:.." of the admin's PKIX public key
	Device string `json:"device"` // the device whose policy named it
}

// isAdminsEvent tells a policy.admins index event.
func isAdminsEvent(rec []byte) bool {
	return bytes.HasPrefix(rec, []byte(`{"v":1,"type":"`+eventAdmins+`"`))
}

// parseAdminsEvent reads a policy.admins index event strictly.
func parseAdminsEvent(rec []byte) (*adminsEvent, error) {
	var ev adminsEvent
	dec := json.NewDecoder(bytes.NewReader(rec))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&ev); err != nil {
		return nil, err
	}
	if ev.V != 1 || ev.Type != eventAdmins {
		return nil, fmt.Errorf("event %.40q version %d", ev.Type, ev.V)
	}
	for _, ad := range ev.Admins {
		if _, err := wire.ParseHash(ad.Key); err != nil {
			return nil, err
		}
	}
	return &ev, nil
}

// indexAdmins is what replaying the index tells of the policy admins:
// the key ids of the accept events and policy.admins events, and the
// bundles whose accept events predate "admins" and no policy.admins
// event covers.
type indexAdmins struct {
	keys   map[string]string // key id -> device
	legacy [][32]byte
}

func (ia *indexAdmins) add(kid, device string) {
	if ia.keys == nil {
		ia.keys = map[string]string{}
	}
	if _, ok := ia.keys[kid]; !ok {
		ia.keys[kid] = device
	}
}

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
		if !bytes.Contains(rec, []byte(custody.TypePolicyChange)) {
			continue // most records: not parsed again on the accept path
		}
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

// learnFrom records the admin keys ids of device's policy; an operator
// key among them raises an alarm.
func (a *Archive) learnFrom(ctx context.Context, g *deviceGate, device string, ids []string) {
	for _, kid := range ids {
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

// learnAdmins gives the gate the admin keys the index recorded and, for
// accept events of earlier versions, reads the stored bundles once and
// records what they name in a policy.admins event.
func (a *Archive) learnAdmins(ctx context.Context, g *deviceGate) error {
	a.mu.Lock()
	keys := maps.Clone(a.idxAdmins.keys)
	legacy := a.idxAdmins.legacy
	a.mu.Unlock()
	for _, kid := range slices.Sorted(maps.Keys(keys)) {
		a.learnFrom(ctx, g, keys[kid], []string{kid})
	}
	if len(legacy) == 0 {
		return nil
	}
	ls, err := a.readLogState(ctx)
	if err != nil {
		return err
	}
	var learnt []adminOfDev
	for _, d := range legacy {
		raw, err := a.stored(ctx, ls, d)
		if err != nil {
			return fmt.Errorf("archive: bundle %s: %w", wire.FormatHash(d), err)
		}
		b, err := bundle.ReadBytes(raw, a.opts.Limits)
		if err != nil {
			return fmt.Errorf("archive: bundle %s: %w", wire.FormatHash(d), err)
		}
		ids := adminKeyIDs(b)
		a.learnFrom(ctx, g, ls.bundles[d], ids)
		for _, kid := range ids {
			learnt = append(learnt, adminOfDev{Key: kid, Device: ls.bundles[d]})
		}
	}
	ev, err := json.Marshal(adminsEvent{V: 1, Type: eventAdmins, Time: wire.FormatTime(a.now()), Admins: nilIfEmpty(learnt)})
	if err != nil {
		return fmt.Errorf("archive: index: %w", err)
	}
	if _, err := a.index.Append(ctx, store.Entry{Build: func(uint64, [32]byte) ([]byte, error) { return ev, nil }}); err != nil {
		return fmt.Errorf("archive: index: %w", err)
	}
	a.lg.Info("policy admin keys of bundles accepted by an earlier version recorded in the index", "bundles", len(legacy), "keys", len(learnt))
	a.mu.Lock()
	a.adminsEvents++
	for _, ad := range learnt {
		a.idxAdmins.add(ad.Key, ad.Device)
	}
	a.idxAdmins.legacy = nil
	a.mu.Unlock()
	return nil
}
