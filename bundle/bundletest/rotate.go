package bundletest

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"time"

	"github.com/edgeseal/edgeseal/bundle"
	"github.com/edgeseal/edgeseal/tpm/attest/attesttest"
)

// RotateOptions shape a signing-key rotation of a software device; the
// fields but Reason forge it.
type RotateOptions struct {
	Reason string // default "scheduled"
	// SignWithNew signs the rotation statement with the new key (under
	// the old key's id) instead of the old key.
	SignWithNew bool
	// OtherAK has the attacker's AK certify the new key.
	OtherAK bool
	// KeepOld leaves the old key sealing after the records.
	KeepOld bool
	// NoRevoke leaves out the key.revoke of the old key.
	NoRevoke bool
}

// Rotate rotates the chain's software signing key as the agent does: it
// queues a key.rotate record (the statement signed by the old key) and a
// key.revoke of the old key (reason "rotated") to lead the next bundle,
// and from then on the device seals with the new key. It needs the
// software device (Soft).
func (c *Chain) Rotate(ctx context.Context, o RotateOptions) error {
	soft, ok := c.Dev.(Soft)
	if !ok {
		return ErrUnsupported
	}
	if o.Reason == "" {
		o.Reason = "scheduled"
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	old := c.Identity
	newPub := attesttest.PublicArea(&key.PublicKey, attesttest.SigningAttributes, soft.PolicyDigest())
	certifier := soft.TPM
	if o.OtherAK {
		att, ok := c.Attacker.(Soft)
		if !ok {
			return ErrUnsupported
		}
		certifier = att.TPM
	}
	msg, sig := certifier.Certify(newPub)
	c.clock = c.clock.Add(1500 * time.Microsecond)
	st := bundle.KeyRotateStatement{
		V: bundle.KeyBodyVersion, Type: bundle.KeyRotateStatementType, Device: c.DeviceName(),
		OldKeyID: old.KeyID, NewKeyID: bundle.KeyID(newPub), NewPublic: newPub,
		NewCertification: bundle.KeyCert{Attest: msg, Signature: sig},
		AKID:             bundle.KeyID(old.AKPublic), Reason: o.Reason, Time: bundle.FormatTime(c.clock),
	}
	payload, err := st.Marshal()
	if err != nil {
		return err
	}
	var signer bundle.Signer = c.Dev
	if o.SignWithNew {
		signer = keyIDSigner{id: old.KeyID, Device: Soft{&attesttest.TPM{SigningKey: key, PCRs: soft.PCRs, Values: soft.Values, Bound: soft.Bound}}}
	}
	env, err := bundle.SignEnvelope(ctx, signer, bundle.KeyRotatePayloadType, payload)
	if err != nil {
		return err
	}
	body := bundle.KeyRotateBody{V: bundle.KeyBodyVersion, OldKeyID: old.KeyID, NewKeyID: st.NewKeyID, Reason: o.Reason, Statement: env}
	c.queued = append(c.queued, func(r *bundle.Record) {
		r.Type, r.Actor = bundle.TypeKeyRotate, bundle.Actor{Kind: "agent", ID: old.KeyID}
		_ = r.SetBody(body)
	})
	if !o.NoRevoke {
		c.queued = append(c.queued, func(r *bundle.Record) {
			r.Type, r.Actor = bundle.TypeKeyRevoke, bundle.Actor{Kind: "agent", ID: st.NewKeyID}
			_ = r.SetBody(bundle.KeyRevokeBody{V: bundle.KeyBodyVersion, KeyID: old.KeyID, Reason: bundle.KeyRevokeRotated})
		})
	}
	if o.KeepOld {
		return nil
	}
	soft.SigningKey = key
	c.Identity = soft.Identity()
	if o.OtherAK { // the bundle carries what the statement says
		c.Identity.Certify = bundle.Attestation{Attest: msg, Signature: sig}
	}
	if c.Identity.KeyID != st.NewKeyID {
		return errors.New("bundletest: rotated identity does not name the new key")
	}
	return nil
}
