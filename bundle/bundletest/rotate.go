package bundletest

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"time"

	"github.com/edgeseal/edgeseal/bundle/custody"
	"github.com/edgeseal/edgeseal/bundle/dsse"
	"github.com/edgeseal/edgeseal/bundle/wire"
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
	st := custody.KeyRotateStatement{
		V: custody.KeyBodyVersion, Type: custody.KeyRotateStatementType, Device: c.DeviceName(),
		OldKeyID: old.KeyID, NewKeyID: custody.KeyID(newPub), NewPublic: newPub,
		NewCertification: custody.KeyCert{Attest: msg, Signature: sig},
		AKID:             custody.KeyID(old.AKPublic), Reason: o.Reason, Time: wire.FormatTime(c.clock),
	}
	payload, err := st.Marshal()
	if err != nil {
		return err
	}
	var signer dsse.Signer = c.Dev
	if o.SignWithNew {
		signer = keyIDSigner{id: old.KeyID, Device: Soft{&attesttest.TPM{SigningKey: key, PCRs: soft.PCRs, Values: soft.Values, Bound: soft.Bound}}}
	}
	env, err := dsse.SignEnvelope(ctx, signer, custody.KeyRotatePayloadType, payload)
	if err != nil {
		return err
	}
	body := custody.KeyRotateBody{V: custody.KeyBodyVersion, OldKeyID: old.KeyID, NewKeyID: st.NewKeyID, Reason: o.Reason, Statement: env}
	c.queued = append(c.queued, func(r *custody.Record) {
		r.Type, r.Actor = custody.TypeKeyRotate, custody.Actor{Kind: "agent", ID: old.KeyID}
		_ = r.SetBody(body)
	})
	if !o.NoRevoke {
		c.queued = append(c.queued, func(r *custody.Record) {
			r.Type, r.Actor = custody.TypeKeyRevoke, custody.Actor{Kind: "agent", ID: st.NewKeyID}
			_ = r.SetBody(custody.KeyRevokeBody{V: custody.KeyBodyVersion, KeyID: old.KeyID, Reason: custody.KeyRevokeRotated})
		})
	}
	if o.KeepOld {
		return nil
	}
	soft.SigningKey = key
	c.Identity = soft.Identity()
	if o.OtherAK { // the bundle carries what the statement says
		c.Identity.Certify = custody.Attestation{Attest: msg, Signature: sig}
	}
	if c.Identity.KeyID != st.NewKeyID {
		return errors.New("bundletest: rotated identity does not name the new key")
	}
	return nil
}
